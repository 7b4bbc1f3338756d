/* One connection of the Redis client (a node's command connection, or a subscriber): connect
 * without blocking, format commands into an output buffer of our own and write what an event
 * batch appended in one go, read within a budget, parse replies with bounded objects and bytes,
 * dispatch each to the oldest command (a reply to none drops the connection), fail everything
 * pending on a loss, reconnect with backoff. hiredis's context gives the non-blocking connect
 * and the reply parser; its output buffer is not used. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cache/l2redis_priv.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xmalloc.h"

static void l2redis__read(struct l2conn *k, bool drain);

void l2redis__complain(struct l2redis *r, const struct l2node *node, const char *what,
                       const char *detail)
{
    uint64_t suppressed = 0;
    if (log_limit_ok(&r->limit, loop_now_ms(r->loop), L2REDIS_LOG_INTERVAL_MS, &suppressed))
        ag_log(AG_LOG_WARN, "cache l2: redis %s:%d %s: %s (%llu similar messages suppressed)",
               node ? node->host : "cluster", node ? node->port : 0, what, detail ? detail : "",
               (unsigned long long)suppressed);
}

/* An error, counted for the client and against <node> when known. */
void l2redis__error(struct l2redis *r, struct l2node *node)
{
    r->errors++;
    if (node != NULL)
        node->errors++;
}

/* ---- connection lifetime ---- */

static void l2redis__schedule_retry(struct l2conn *k)
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
static void l2redis__next_node(struct l2conn *k)
{
    struct l2redis *r = k->r;
    if (k == &r->ssub && r->nsentinels > 0)
        k->node = r->sentinels[r->ssub_next++ % r->nsentinels];
    else if (k->sub && r->cluster && r->nnodes > 0)
        k->node = r->nodes[r->sub_next++ % r->nnodes];
}

void l2redis__req_free(struct l2redis_req *q)
{
    free(q);
}

/* Drops the output bytes both written and answered (a subscriber's are answered once written):
 * all of them at no cost in the usual case, else by a move once they are half the buffer. */
static void l2redis__trim(struct l2conn *k)
{
    if (k->sub)
        k->out_done = k->out_base + k->out.len;
    uint64_t upto = k->out_sent < k->out_done ? k->out_sent : k->out_done;
    size_t drop = (size_t)(upto - k->out_base);
    if (drop == 0)
        return;
    if (drop == k->out.len) {
        k->out.len = 0;
        if (k->out.cap > L2REDIS_OUT_KEEP) /* a burst of large SETs is not kept for ever */
            buf_deinit(&k->out);
    } else if (drop >= 4096 && drop >= k->out.len / 2) {
        memmove(k->out.data, k->out.data + drop, k->out.len - drop);
        k->out.len -= drop;
    } else {
        return;
    }
    k->out_base = upto;
}

void l2redis__append(struct l2conn *k, int argc, const char **argv, const size_t *argl)
{
    l2redis_format(&k->out, argc, argv, argl);
}

/* Closes <k>'s connection (counted and logged as <what>: <detail> unless destroying), answers
 * every pending request with an error and schedules the reconnect. Safe from any callback of <k>:
 * nothing of the closed connection is used afterwards. */
void l2redis__fail(struct l2conn *k, const char *what, const char *detail)
{
    struct l2redis *r = k->r;
    if (k->c == NULL)
        return;
    if (!r->destroying) {
        l2redis__error(r, k->node);
        l2redis__complain(r, k->node, what,
                          detail); /* before <detail> (maybe c->errstr) is freed */
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
    buf_deinit(&k->out); /* nothing of it is sent again: its commands are answered below */
    k->out_base = k->out_sent = k->out_done = 0;
    l2redis__next_node(k); /* a subscriber moves on, in case its node died */
    l2redis__schedule_retry(k);
    if (!r->destroying && ((r->cluster && !k->sub) || (r->sentinel && k == &r->nodes[0]->cmd)))
        l2redis__topo_soon(r); /* a lost primary: its replica may take over */
    /* the callbacks may issue commands: they find the connection down */
    while (k->pend_count > 0) {
        struct l2redis_req *q = k->pend[k->pend_head].q;
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
                l2redis__error(r, k->node);
            q->cb(q->arg, L2REDIS_ERROR, NULL, NULL, 0);
        }
        l2redis__req_free(q);
    }
}

static void l2redis__flush(struct l2conn *k)
{
    while (k->c != NULL && k->connected && k->out_sent < k->out_base + k->out.len) {
        size_t at = (size_t)(k->out_sent - k->out_base), n = k->out.len - at;
        ssize_t w = send(k->fd, k->out.data + at, n, MSG_NOSIGNAL);
        if (w == -1 && errno == EINTR)
            continue;
        if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break; /* the socket is full: the next write edge resumes */
        if (w == -1) {
            l2redis__fail(k, "connection lost", strerror(errno));
            return;
        }
        k->out_sent += (uint64_t)w;
        if ((size_t)w < n)
            break;
    }
    if (k->c != NULL)
        l2redis__trim(k);
}

static void l2redis__flush_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct l2conn *k = arg;
    k->flush_queued = false;
    l2redis__flush(k);
}

/* Commands appended during this event batch go out in one write after it. */
static void l2redis__queue_flush(struct l2conn *k)
{
    if (k->connected && !k->flush_queued) {
        k->flush_queued = true;
        loop_defer(k->r->loop, l2redis__flush_cb, k);
    }
}

static void l2redis__on_connected(struct l2conn *k)
{
    struct l2redis *r = k->r;
    int err = 0;
    socklen_t el = sizeof(err);
    if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &el) == -1)
        err = errno;
    if (err != 0) {
        l2redis__fail(k, "connect failed", strerror(err));
        return;
    }
    loop_timer_stop(r->loop, &k->retry); /* the connect deadline */
    if (k->backoff_ms > r->reconnect_ms)
        ag_log(AG_LOG_INFO, "cache l2: redis %s:%d connected", k->node->host, k->node->port);
    k->connected = true;
    k->backoff_ms = 0;
    l2redis__queue_flush(k); /* SELECT or SUBSCRIBE, and what was queued meanwhile */
    if (r->cluster && !k->sub && r->slots_covered == 0)
        loop_timer_start(r->loop, &r->topo, 0); /* the first slot map */
    if (r->sentinel && k->node->sentinel && !k->sub && r->nodes[0]->port == 0)
        loop_timer_start(r->loop, &r->topo, 0); /* where is the primary? */
}

static void l2redis__on_event(struct loop *loop, int fd, void *arg, unsigned events)
{
    (void)loop;
    (void)fd;
    struct l2conn *k = arg;
    if (k->c == NULL)
        return;
    if (!k->connected) {
        l2redis__on_connected(k);
        if (k->c == NULL)
            return;
    }
    if (events & (LOOP_WRITE | LOOP_ERROR))
        l2redis__flush(k);
    if (k->c != NULL && (events & (LOOP_READ | LOOP_ERROR)))
        l2redis__read(k, (events & (LOOP_HUP | LOOP_ERROR)) != 0);
}

static void l2redis__more_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct l2conn *k = arg;
    if (k->c != NULL)
        l2redis__read(k, true);
}

static void l2redis__retry_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct l2conn *k = arg;
    if (k->c != NULL) { /* still connecting */
        char why[64];
        snprintf(why, sizeof(why), "no answer in %d ms", L2REDIS_CONNECT_TIMEOUT_MS);
        l2redis__fail(k, "connect timed out", why);
        return;
    }
    l2redis__connect(k);
}

/* ---- replies ---- */

/* The most objects the reply being parsed may have: its request's limit. */
static unsigned l2redis__object_limit(const struct l2conn *k)
{
    if (!k->sub && k->pend_count > 0 && k->pend[k->pend_head].q != NULL)
        return k->pend[k->pend_head].q->max_objects;
    return L2REDIS_MAX_OBJECTS;
}

/* hiredis's object constructors, counted: a reply with more objects than its request allows is
 * refused, and an array header ("*2000000000") before the parser allocates for its elements. */
static bool l2redis__count_object(const redisReadTask *t, int elements)
{
    struct l2conn *k = t->privdata;
    unsigned max = l2redis__object_limit(k);
    if (elements > (int)(max - k->objects) || ++k->objects > max) {
        k->too_many = true;
        return false;
    }
    return true;
}
static void *l2redis__mk_string(const redisReadTask *t, char *s, size_t n)
{
    struct l2conn *k = t->privdata;
    return l2redis__count_object(t, 0) ? k->base->createString(t, s, n) : NULL;
}
static void *l2redis__mk_array(const redisReadTask *t, int n)
{
    struct l2conn *k = t->privdata;
    return l2redis__count_object(t, n) ? k->base->createArray(t, n) : NULL;
}
static void *l2redis__mk_integer(const redisReadTask *t, long long v)
{
    struct l2conn *k = t->privdata;
    return l2redis__count_object(t, 0) ? k->base->createInteger(t, v) : NULL;
}
static void *l2redis__mk_nil(const redisReadTask *t)
{
    struct l2conn *k = t->privdata;
    return l2redis__count_object(t, 0) ? k->base->createNil(t) : NULL;
}

/* The answer to a command: MGET's (or a script's) array, one bulk string or nil per element; a
 * single bulk string, nil or integer is an answer of one element (not for a lookup). */
static void l2redis__answer(struct l2redis *r, struct l2redis_req *q, const redisReply *rep)
{
    loop_timer_stop(r->loop, &q->timer);
    if (q->cb == NULL) { /* only checked */
        if (rep->type == REDIS_REPLY_ERROR) {
            l2redis__error(r, q->to);
            l2redis__complain(r, q->to, "command failed", rep->str);
        }
        return;
    }
    if (q->answered || q->cancelled)
        return;
    q->answered = true;
    bool array = rep->type == REDIS_REPLY_ARRAY;
    if ((array && rep->elements > q->max_n) || rep->type == REDIS_REPLY_ERROR ||
        (!array && q->max_n <= 4)) {
        l2redis__error(r, q->to);
        if (rep->type == REDIS_REPLY_ERROR)
            l2redis__complain(r, q->to, "lookup failed", rep->str);
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
bool l2redis__room(struct l2redis *r, struct l2node *node)
{
    struct l2conn *k = node != NULL ? &node->cmd : NULL;
    if (k == NULL || k->c == NULL || !k->connected)
        return false;
    if (k->pend_count + 1 >= L2REDIS_MAX_PENDING ||
        k->out_base + k->out.len - k->out_sent >= L2REDIS_MAX_OBUF) {
        l2redis__complain(r, node, "not keeping up", "commands dropped until it answers");
        return false;
    }
    return true;
}

void l2redis__push(struct l2conn *k, struct l2redis_req *q)
{
    struct l2pend *p = &k->pend[(k->pend_head + k->pend_count++) % L2REDIS_MAX_PENDING];
    p->q = q;
    p->end = k->out_base + k->out.len;
    l2redis__queue_flush(k);
}

static struct l2node *l2redis__node_find(struct l2redis *r, const char *host, int port)
{
    for (size_t i = 0; i < r->nnodes; i++)
        if (r->nodes[i]->port == port && strcmp(r->nodes[i]->host, host) == 0)
            return r->nodes[i];
    return NULL;
}

/* The node at <host>:<port>, added (and connected) when new; NULL when the table is full. */
struct l2node *l2redis__node(struct l2redis *r, const char *host, int port)
{
    struct l2node *n = l2redis__node_find(r, host, port);
    if (n != NULL || r->nnodes == L2REDIS_MAX_NODES)
        return n;
    /* a cluster's nodes are connected to by address only: a name would block the loop thread in
     * getaddrinfo (the config refuses named seeds; redirects and slot maps are checked before) */
    if (r->cluster && !l2redis_is_ip(host))
        return NULL;
    n = xcalloc(1, sizeof(*n));
    snprintf(n->host, sizeof(n->host), "%s", host);
    n->port = port;
    l2redis__conn_init(r, &n->cmd, n, false);
    r->nodes[r->nnodes++] = n;
    l2redis__connect(&n->cmd);
    return n;
}

size_t l2redis__node_index(const struct l2redis *r, const struct l2node *n)
{
    for (size_t i = 0; i < r->nnodes; i++)
        if (r->nodes[i] == n)
            return i;
    return 0;
}

/* One complete reply. On a command connection it answers the oldest command; one that answers
 * nothing means the peer is not the Redis we talk to, and the connection is dropped. On the
 * subscriber connection only "message" pushes on our channel matter. */
static void l2redis__dispatch(struct l2conn *k, const redisReply *rep)
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
            l2redis__topo_soon(r);
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
        l2redis__fail(k, "protocol error", "a reply to no command (is this port a Redis server?)");
        return;
    }
    struct l2redis_req *q = k->pend[k->pend_head].q;
    uint64_t start = k->out_done, end = k->pend[k->pend_head].end;
    k->pend_head = (k->pend_head + 1) % L2REDIS_MAX_PENDING;
    k->pend_count--;
    k->out_done = end; /* its bytes stay until the next trim, after this read */
    if (q == NULL) {
        if (rep->type == REDIS_REPLY_ERROR) {
            l2redis__error(r, k->node);
            l2redis__complain(r, k->node, "command failed", rep->str);
        }
        return;
    }
    if (q->raw != NULL) {
        q->raw(r, k->node, rep);
        l2redis__req_free(q);
        return;
    }
    if (r->sentinel && rep->type == REDIS_REPLY_ERROR && rep->len >= 8 &&
        memcmp(rep->str, "READONLY", 8) == 0)
        l2redis__topo_soon(r); /* a demoted primary: ask the sentinels again */
    if (r->cluster && rep->type == REDIS_REPLY_ERROR && !q->cancelled &&
        !(q->answered && q->cb != NULL) && l2redis__redirect(r, k, q, rep, start, end))
        return;
    l2redis__answer(r, q, rep);
    l2redis__req_free(q);
}

/* Reads what the socket has, up to L2REDIS_READ_BUDGET (then resumes from a zero timer, after
 * the other connections of this loop had their turn), and dispatches every complete reply. A
 * read shorter than asked for emptied the socket (epoll(7)), so the loop stops there without a
 * read that only returns EAGAIN (one per connection and event: a cluster client has one
 * connection per node), unless <drain>: the peer hung up, and its EOF, behind the data, must be
 * read now (no edge follows). */
static void l2redis__read(struct l2conn *k, bool drain)
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
            break;
        if (n <= 0) {
            l2redis__fail(k, "connection lost", n == 0 ? "closed by the server" : strerror(errno));
            return;
        }
        budget -= (size_t)n < budget ? (size_t)n : budget;
        redisReader *rd = k->c->reader;
        if (redisReaderFeed(rd, buf, (size_t)n) != REDIS_OK) {
            l2redis__fail(k, "connection lost", "out of memory");
            return;
        }
        for (;;) {
            void *reply = NULL;
            if (redisReaderGetReply(rd, &reply) != REDIS_OK) {
                l2redis__fail(k, "protocol error",
                              k->too_many ? "a reply with too many elements" : rd->errstr);
                return;
            }
            if (reply == NULL)
                break;
            k->objects = 0;
            l2redis__dispatch(k, reply);
            freeReplyObject(reply);
            if (k->c == NULL)
                return;
        }
        if (rd->len - rd->pos > r->max_reply) {
            char why[96];
            snprintf(why, sizeof(why), "a reply over %zu bytes", r->max_reply);
            l2redis__fail(k, "protocol error", why);
            return;
        }
        if ((size_t)n < sizeof(buf) && !drain)
            break;
    }
    if (k->c != NULL)
        l2redis__trim(k);
}

void l2redis__connect(struct l2conn *k)
{
    struct l2redis *r = k->r;
    if (r->destroying || k->c != NULL || k->node == NULL || k->node->port == 0)
        return; /* port 0: the sentinels have not named the primary yet */
    const char *host = k->node->host;
    bool is_unix = k->node->port == -1;
    char ip[64];
    if (!is_unix && !r->cluster && !r->sentinel && r->resolve != NULL) {
        if (r->resolve(r->resolve_arg, ip, sizeof(ip)) != 0) {
            l2redis__error(r, k->node);
            l2redis__complain(r, k->node, "connect failed", "no address for the host yet (DNS)");
            l2redis__schedule_retry(k);
            return;
        }
        host = ip;
    }
    redisContext *c =
        is_unix ? redisConnectUnixNonBlock(host) : redisConnectNonBlock(host, k->node->port);
    if (c == NULL || c->err) {
        l2redis__error(r, k->node);
        l2redis__complain(r, k->node, "connect failed", c ? c->errstr : "out of memory");
        if (c != NULL)
            redisFree(c);
        l2redis__next_node(k);
        l2redis__schedule_retry(k);
        return;
    }
    k->c = c;
    k->fd = c->fd;
    k->connected = false;
    k->base = c->reader->fn;
    k->fns = *k->base;
    k->fns.createString = l2redis__mk_string;
    k->fns.createArray = l2redis__mk_array;
    k->fns.createInteger = l2redis__mk_integer;
    k->fns.createNil = l2redis__mk_nil;
    c->reader->fn = &k->fns;
    c->reader->privdata = k;
    k->objects = 0;
    k->too_many = false;
    if (loop_add_fd(r->loop, k->fd, LOOP_READ | LOOP_WRITE, l2redis__on_event, k) == -1) {
        l2redis__fail(k, "connect failed", strerror(errno));
        return;
    }
    k->registered = true;
    loop_timer_start(r->loop, &k->retry, L2REDIS_CONNECT_TIMEOUT_MS);
    if (k->sub) {
        const char *chan = k == &r->ssub ? "+switch-master" : r->channel;
        const char *argv[2] = {"SUBSCRIBE", chan};
        size_t argl[2] = {9, strlen(chan)};
        l2redis__append(k, 2, argv, argl);
    } else if (r->db != 0 && !k->node->sentinel) {
        char db[16];
        const char *argv[2] = {"SELECT", db};
        size_t argl[2] = {6, (size_t)snprintf(db, sizeof(db), "%d", r->db)};
        l2redis__append(k, 2, argv, argl);
        struct l2pend *p = &k->pend[(k->pend_head + k->pend_count++) % L2REDIS_MAX_PENDING];
        p->q = NULL;
        p->end = k->out_base + k->out.len;
    }
}

void l2redis__conn_init(struct l2redis *r, struct l2conn *k, struct l2node *node, bool sub)
{
    k->r = r;
    k->node = node;
    k->fd = -1;
    k->sub = sub;
    loop_timer_init(&k->retry, l2redis__retry_cb, k);
    loop_timer_init(&k->more, l2redis__more_cb, k);
    if (!sub)
        k->pend = xcalloc(L2REDIS_MAX_PENDING, sizeof(*k->pend));
}
