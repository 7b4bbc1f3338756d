/* Redis Cluster for the client: the slot map read with CLUSTER SLOTS (on a timer, and soon
 * after a redirect or a lost node), each command routed to its slot's node, MOVED/ASK followed a
 * bounded number of times. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/l2redis_priv.h"
#include "core/assert.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xmalloc.h"

/* Appends the bytes [<start>, <end>) of <from>'s output to <to>'s (maybe the same connection:
 * the source is located once the room is made). */
static void l2redis__resend(struct l2conn *to, const struct l2conn *from, uint64_t start,
                            uint64_t end)
{
    size_t n = (size_t)(end - start);
    AG_ASSERT(start >= from->out_base && end <= from->out_base + from->out.len);
    buf_reserve(&to->out, n);
    memcpy(buf_tail(&to->out), from->out.data + (start - from->out_base), n);
    buf_commit(&to->out, n);
}

/* A redirect for <q> (its command: bytes [<start>, <end>) of <fk>'s output): MOVED updates the
 * slot map and asks for a new one soon; both send the same bytes again to the named node (ASK
 * after ASKING), at most L2REDIS_MAX_REDIRECTS times. True when <q> went on (it is then not
 * <fk>'s any more). */
bool l2redis__redirect(struct l2redis *r, struct l2conn *fk, struct l2redis_req *q,
                       const redisReply *rep, uint64_t start, uint64_t end)
{
    struct l2node *from = fk->node;
    unsigned slot;
    char host[64];
    int port;
    int kind = l2redis_parse_redirect(rep->str, (size_t)rep->len, &slot, host, sizeof(host), &port);
    if (kind <= 0)
        return false;
    if (!l2redis_is_ip(host)) {
        /* a cluster announcing host names (cluster-preferred-endpoint-type hostname): never
         * resolved here; the slot map gives each node's ip beside its name */
        l2redis__complain(r, from, "redirected to a host name, not followed", host);
        l2redis__topo_soon(r);
        return false;
    }
    r->redirects++;
    struct l2node *to = l2redis__node(r, host, port);
    if (kind == L2REDIS_MOVED) {
        if (to != NULL)
            r->slots[slot] = (uint8_t)(l2redis__node_index(r, to) + 1);
        l2redis__topo_soon(r);
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
    if (to == NULL || !l2redis__room(r, to))
        return false;
    if (kind == L2REDIS_ASK) {
        const char *argv[1] = {"ASKING"};
        size_t argl[1] = {6};
        l2redis__append(&to->cmd, 1, argv, argl);
        l2redis__push(&to->cmd, NULL);
    }
    l2redis__resend(&to->cmd, fk, start, end);
    q->to = to;
    l2redis__push(&to->cmd, q);
    return true;
}

/* ---- cluster topology ---- */

/* The "ip" of a CLUSTER SLOTS node entry's networking metadata ([endpoint, port, id, [key, value,
 * ...]], Redis 7: given when the preferred endpoint is a host name); NULL without a numeric one. */
static const char *l2redis__meta_ip(const redisReply *pn)
{
    if (pn->elements < 4 || pn->element[3]->type != REDIS_REPLY_ARRAY)
        return NULL;
    const redisReply *m = pn->element[3];
    for (size_t j = 0; j + 1 < m->elements; j += 2)
        if (m->element[j]->type == REDIS_REPLY_STRING && strcmp(m->element[j]->str, "ip") == 0 &&
            m->element[j + 1]->type == REDIS_REPLY_STRING && l2redis_is_ip(m->element[j + 1]->str))
            return m->element[j + 1]->str;
    return NULL;
}

/* The answer to CLUSTER SLOTS from <from>: [[start, end, [ip, port, ...], replicas...], ...].
 * The slot map is replaced by it (a slot no range names maps to nobody: its lookups fail fast). */
static void l2redis__on_slots(struct l2redis *r, struct l2node *from, const redisReply *rep)
{
    r->topo_inflight = false;
    if (r->destroying)
        return;
    uint64_t now = loop_now_ms(r->loop);
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        if (rep != NULL) {
            l2redis__error(r, from);
            l2redis__complain(r, from, "CLUSTER SLOTS failed",
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
        else if (!l2redis_is_ip(ip) && (ip = l2redis__meta_ip(pn)) == NULL) {
            /* a host name and no ip beside it: its slots stay unserved (lookups fail fast) */
            l2redis__error(r, from);
            l2redis__complain(r, from, "CLUSTER SLOTS names a node by host name only, not used",
                              pn->element[0]->str);
            continue;
        }
        struct l2node *n = l2redis__node(r, ip, (int)pn->element[1]->integer);
        if (n == NULL)
            continue;
        uint8_t idx = (uint8_t)(l2redis__node_index(r, n) + 1);
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
void l2redis__topo_cb(struct loop *loop, void *arg)
{
    (void)loop;
    struct l2redis *r = arg;
    if (r->destroying || r->topo_inflight)
        return;
    if (r->sentinel) {
        l2redis__ask_sentinel(r);
        return;
    }
    for (size_t i = 0; i < r->nnodes; i++) {
        struct l2node *n = r->nodes[(r->topo_next + i) % r->nnodes];
        if (!l2redis__room(r, n))
            continue;
        r->topo_next = (r->topo_next + i + 1) % r->nnodes;
        struct l2redis_req *q = xcalloc(1, sizeof(*q));
        q->r = r;
        q->to = n;
        q->max_objects = L2REDIS_TOPO_OBJECTS;
        q->raw = l2redis__on_slots;
        loop_timer_init(&q->timer, NULL, NULL);
        const char *argv[2] = {"CLUSTER", "SLOTS"};
        size_t argl[2] = {7, 5};
        l2redis__append(&n->cmd, 2, argv, argl);
        l2redis__push(&n->cmd, q);
        r->topo_inflight = true;
        return;
    }
    loop_timer_start(r->loop, &r->topo, L2REDIS_TOPO_RETRY_MS); /* nobody connected yet */
}

/* The slot map is read again soon (at most every L2REDIS_TOPO_SOON_MS). */
void l2redis__topo_soon(struct l2redis *r)
{
    if ((!r->cluster && !r->sentinel) || r->destroying || r->topo_inflight)
        return;
    uint64_t now = loop_now_ms(r->loop);
    uint64_t at = r->topo_ms + L2REDIS_TOPO_SOON_MS;
    loop_timer_start(r->loop, &r->topo, at > now ? at - now : 0);
}

/* The node for a command on <key> (NULL: any connected node); NULL when nobody serves it now
 * (then the slot map is asked for soon). */
struct l2node *l2redis__route(struct l2redis *r, const char *key, size_t klen)
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
        l2redis__topo_soon(r);
        return NULL;
    }
    return r->nodes[idx - 1];
}
