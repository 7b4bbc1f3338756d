/* Sentinel for the client: the primary's address asked of the sentinels (each in turn, every
 * L2REDIS_SENTINEL_POLL_MS and on +switch-master), and the connections moved to a new one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/l2redis_priv.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xmalloc.h"

/* ---- sentinel ---- */

/* Points <k> (a connection to the primary) at its new address: dropped and connected again now,
 * not after a backoff. */
static void l2redis__repoint(struct l2conn *k)
{
    struct l2redis *r = k->r;
    if (k->c != NULL)
        l2redis__fail(k, "primary changed", "reconnecting to the new primary");
    loop_timer_stop(r->loop, &k->retry);
    k->backoff_ms = 0;
    k->node = r->nodes[0];
    l2redis__connect(k);
}

/* The answer to SENTINEL get-master-addr-by-name from <from>: [ip, port], or nil when that
 * sentinel does not know the name. */
static void l2redis__on_master(struct l2redis *r, struct l2node *from, const redisReply *rep)
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
        l2redis__error(r, from);
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
    if (!l2redis_is_ip(host)) {
        /* sentinels with announce-hostnames: the name is never resolved on this thread */
        l2redis__error(r, from);
        uint64_t suppressed = 0;
        if (log_limit_ok(&r->topo_limit, loop_now_ms(r->loop), L2REDIS_LOG_INTERVAL_MS,
                         &suppressed))
            ag_log(AG_LOG_WARN,
                   "cache l2: sentinel %s:%d names the primary of '%s' by host name '%s': not "
                   "used, an ip address is needed (sentinel announce-hostnames no) (%llu similar "
                   "messages suppressed)",
                   from->host, from->port, r->master, host, (unsigned long long)suppressed);
        return;
    }
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
    l2redis__repoint(&p->cmd);
    if (r->on_msg != NULL)
        l2redis__repoint(&r->sub);
}

/* Asks a connected sentinel (each in turn) where the primary is. */
void l2redis__ask_sentinel(struct l2redis *r)
{
    for (size_t i = 0; i < r->nsentinels; i++) {
        struct l2node *n = r->sentinels[(r->topo_next + i) % r->nsentinels];
        if (!l2redis__room(r, n))
            continue;
        r->topo_next = (r->topo_next + i + 1) % r->nsentinels;
        struct l2redis_req *q = xcalloc(1, sizeof(*q));
        q->r = r;
        q->to = n;
        q->max_objects = L2REDIS_MAX_OBJECTS;
        q->raw = l2redis__on_master;
        loop_timer_init(&q->timer, NULL, NULL);
        const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", r->master};
        size_t argl[3] = {8, 23, strlen(r->master)};
        l2redis__append(&n->cmd, 3, argv, argl);
        l2redis__push(&n->cmd, q);
        r->topo_inflight = true;
        return;
    }
    loop_timer_start(r->loop, &r->topo, L2REDIS_TOPO_RETRY_MS); /* no sentinel connected yet */
}
