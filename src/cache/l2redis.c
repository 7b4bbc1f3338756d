/* Redis on our event loop, with hiredis used for what cannot go wrong on hostile bytes: the RESP
 * parser (redisReader), command formatting and the non-blocking socket of a redisContext. The
 * reply dispatch is ours, not hiredis's async layer: hiredis 0.14 async.c asserts on the server's
 * bytes (a reply nobody asked for, a malformed pub/sub message) and so let any port that speaks
 * RESP abort the worker. Here a reply without a request is a protocol error that drops the
 * connection, and everything a peer can make us hold is bounded: unanswered commands
 * (L2REDIS_MAX_PENDING), unsent bytes (L2REDIS_MAX_OBUF), one reply's bytes and objects, and the
 * bytes read per event (a peer that never stops sending cannot keep the loop thread). Commands
 * issued during an event batch are written together after it (pipelining); each lookup carries
 * its own loop timer. This file: create and destroy a client, its counters and view, and the
 * commands (each routed to its node, with its deadline). */
#include "cache/l2redis.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cache/l2redis_priv.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xmalloc.h"

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
        loop_timer_init(&r->topo, l2redis__topo_cb, r);
        for (int i = 0; i < nseeds; i++)
            l2redis__node(r, hosts[i], ports[i]);
    } else if (r->sentinel) {
        loop_timer_init(&r->topo, l2redis__topo_cb, r);
        struct l2node *p = xcalloc(1, sizeof(*p)); /* the primary, once they name it */
        l2redis__conn_init(r, &p->cmd, p, false);
        r->nodes[r->nnodes++] = p;
        for (int i = 0; i < nseeds; i++) {
            struct l2node *n = xcalloc(1, sizeof(*n));
            snprintf(n->host, sizeof(n->host), "%.63s", hosts[i]);
            n->port = ports[i];
            n->sentinel = true;
            l2redis__conn_init(r, &n->cmd, n, false);
            r->sentinels[r->nsentinels++] = n;
            l2redis__connect(&n->cmd);
        }
        l2redis__conn_init(r, &r->ssub, r->sentinels[0], true);
        l2redis__connect(&r->ssub);
    } else {
        l2redis__node(r, host, port);
    }
    l2redis__conn_init(r, &r->sub, r->nodes[0], true);
    if (on_msg != NULL)
        l2redis__connect(&r->sub);
    return r;
}

static void l2redis__free_cb(struct loop *loop, void *arg)
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
        l2redis__fail(&r->sentinels[i]->cmd, NULL, NULL);
    }
    if (r->sentinel) {
        loop_timer_stop(r->loop, &r->ssub.retry);
        l2redis__fail(&r->ssub, NULL, NULL);
    }
    for (size_t i = 0; i < r->nnodes; i++) {
        loop_timer_stop(r->loop, &r->nodes[i]->cmd.retry);
        l2redis__fail(&r->nodes[i]->cmd, NULL,
                      NULL); /* pending lookups are answered with an error */
    }
    loop_timer_stop(r->loop, &r->sub.retry);
    l2redis__fail(&r->sub, NULL, NULL);
    /* after deferred flushes that may still name the connections */
    loop_defer(r->loop, l2redis__free_cb, r);
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

static void l2redis__view_node(const struct l2redis *r, const struct l2node *n, unsigned slots,
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
        l2redis__view_node(r, r->nodes[i], slots[i], v);
    for (size_t i = 0; i < r->nsentinels; i++)
        l2redis__view_node(r, r->sentinels[i], 0, v);
}

/* ---- commands ---- */

static void l2redis__on_timeout(struct loop *loop, void *arg)
{
    (void)loop;
    struct l2redis_req *q = arg;
    if (q->answered || q->cancelled)
        return;
    q->answered = true;
    l2redis__error(q->r, q->to);
    l2redis__complain(q->r, q->to, "lookup timed out", "counted as a miss");
    q->cb(q->arg, L2REDIS_ERROR, NULL, NULL, 0);
}

/* Sends a command on <key>'s node; its reply goes to <cb> (NULL: only checked). */
static struct l2redis_req *l2redis__request(struct l2redis *r, int argc, const char **argv,
                                            const size_t *argl, int key_arg, size_t max_n,
                                            l2redis_get_cb *cb, void *arg)
{
    struct l2node *node =
        l2redis__route(r, key_arg >= 0 ? argv[key_arg] : NULL, key_arg >= 0 ? argl[key_arg] : 0);
    if (!l2redis__room(r, node)) {
        l2redis__error(r, node);
        return NULL;
    }
    struct l2redis_req *q = xcalloc(1, sizeof(*q));
    q->r = r;
    q->to = node;
    q->max_n = max_n;
    q->max_objects = max_n + 1 > L2REDIS_MAX_OBJECTS ? (unsigned)max_n + 1 : L2REDIS_MAX_OBJECTS;
    q->cb = cb;
    q->arg = arg;
    loop_timer_init(&q->timer, l2redis__on_timeout, q);
    /* the same for one Redis and a cluster: the bytes stay in the connection's output until
     * answered, and a MOVED/ASK sends them again from there */
    l2redis__append(&node->cmd, argc, argv, argl);
    l2redis__push(&node->cmd, q);
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
    return l2redis__request(r, (int)n + 1, argv, argl, 1, 4, cb, arg);
}

struct l2redis_req *l2redis_command(struct l2redis *r, int argc, const char **argv,
                                    const size_t *argl, int key_arg, size_t max_n,
                                    l2redis_get_cb *cb, void *arg)
{
    if (r == NULL || argc < 1 || key_arg >= argc || max_n > L2REDIS_MAX_ELEMENTS || cb == NULL)
        return NULL;
    return l2redis__request(r, argc, argv, argl, key_arg, max_n < 5 ? 5 : max_n, cb, arg);
}

int l2redis_send(struct l2redis *r, int argc, const char **argv, const size_t *argl, int key_arg)
{
    if (r == NULL || argc < 1 || key_arg >= argc)
        return -1;
    return l2redis__request(r, argc, argv, argl, key_arg, 0, NULL, NULL) != NULL ? 0 : -1;
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
