/* Rules for a Redis Cluster (CLUSTER INFO, CLUSTER NODES and each node's INFO): are all 16384
 * slots served, which nodes fail, which primaries have no replica to fail over to. Pure
 * functions, like rules_redis.c, which calls them when the probe found a cluster. */
#include "doctor/rules.h"

#include <stdio.h>
#include <string.h>

#define SLOTS 16384

static bool failing(const struct redis_node *n)
{
    return n->fail || n->pfail;
}

static const char *state_of(const struct redis_node *n)
{
    return n->fail ? "failed" : n->pfail ? "failing (fail?: not agreed yet)" : "ok";
}

/* Slots served: by primaries the cluster does not mark failing. Without a usable cluster a
 * client gets CLUSTERDOWN (cluster-require-full-coverage yes, the default) for every key, and
 * apigate's L2 for every lookup: all of them go to the origin. */
static void rule_slots(const struct redis_facts *r, struct finding_list *out)
{
    int served = 0, assigned = 0, primaries = 0;
    for (int i = 0; i < r->n_nodes; i++) {
        const struct redis_node *n = &r->nodes[i];
        if (!n->primary || n->slots == 0)
            continue;
        assigned += n->slots;
        primaries++;
        if (!failing(n))
            served += n->slots;
    }
    if (r->n_nodes == 0 && r->slots_ok >= 0) { // CLUSTER NODES unreadable: CLUSTER INFO's word
        served = r->slots_ok;
        assigned = r->slots_assigned;
    }
    bool state_ok = strcmp(r->cluster_state, "ok") == 0;
    enum finding_sev sev = served < SLOTS || !state_ok ? FINDING_CRITICAL : FINDING_OK;
    struct finding *f;
    if (sev == FINDING_OK)
        f = finding_add(out, "redis", "redis-cluster-slots", FINDING_OK,
                        "all %d slots served by %d primaries (cluster_state:%s)", SLOTS, primaries,
                        r->cluster_state);
    else
        f = finding_add(out, "redis", "redis-cluster-slots", FINDING_CRITICAL,
                        "%d of %d slots not served (cluster_state:%s)", SLOTS - served, SLOTS,
                        r->cluster_state[0] ? r->cluster_state : "unknown");
    for (int i = 0; i < r->n_nodes; i++) {
        const struct redis_node *n = &r->nodes[i];
        if (n->primary && n->slots > 0 && failing(n))
            finding_evidence(f, "primary %s (%.8s) %s: slots %s (%d) not served, %s", n->addr,
                             n->id, state_of(n), n->ranges, n->slots,
                             n->replicas > 0 ? "a replica may take over"
                                             : "no replica to take over");
    }
    if (assigned < SLOTS)
        finding_evidence(f, "%d slots assigned to no node", SLOTS - assigned);
    finding_evidence(f,
                     "CLUSTER INFO: cluster_slots_assigned %d, cluster_slots_ok %d, "
                     "cluster_slots_pfail %d, cluster_slots_fail %d, cluster_known_nodes %d",
                     r->slots_assigned, r->slots_ok, r->slots_pfail, r->slots_fail, r->known_nodes);
    finding_source(f, "CLUSTER INFO; CLUSTER NODES from %s", r->where);
    if (sev == FINDING_OK)
        return;
    finding_fix(f, "keys in unserved slots fail (CLUSTERDOWN for every key while cluster_state is "
                   "fail): start the failed primary again, its slots come back with it");
    finding_fix(f, "give every primary a replica so a failure fails over instead "
                   "(redis-cli --cluster add-node NEW:PORT SEED:PORT --cluster-slave)");
    if (assigned < SLOTS)
        finding_fix(f, "slots assigned to no node: redis-cli --cluster fix SEED:PORT");
    if (r->apigate_keys > 0 || r->gateway_l2)
        finding_fix(f, "apigate's L2 counts a lookup on those slots as an error and asks the "
                       "origin: no request fails, but the L2 does nothing for them");
}

/* Failing nodes, and nodes this probe could not read although the cluster does not mark them. */
static void rule_nodes(const struct redis_facts *r, struct finding_list *out)
{
    int fail = 0, unread = 0, primaries = 0, replicas = 0;
    bool primary_down = false;
    for (int i = 0; i < r->n_nodes; i++) {
        const struct redis_node *n = &r->nodes[i];
        primaries += n->primary;
        replicas += !n->primary;
        if (failing(n)) {
            fail++;
            primary_down = primary_down || (n->primary && n->slots > 0);
        } else if (!n->reached) {
            unread++;
        }
    }
    enum finding_sev sev = primary_down        ? FINDING_CRITICAL
                           : fail + unread > 0 ? FINDING_WARNING
                                               : FINDING_OK;
    struct finding *f;
    if (sev == FINDING_OK)
        f = finding_add(out, "redis", "redis-cluster-nodes", sev,
                        "%d nodes (%d primaries, %d replicas), none failing, all read", r->n_nodes,
                        primaries, replicas);
    else
        f = finding_add(out, "redis", "redis-cluster-nodes", sev,
                        "%d of %d nodes failing, %d not read from here", fail, r->n_nodes, unread);
    for (int i = 0; i < r->n_nodes; i++) {
        const struct redis_node *n = &r->nodes[i];
        if (failing(n))
            finding_evidence(f, "%s %s (%.8s) %s%s%s", n->primary ? "primary" : "replica", n->addr,
                             n->id, state_of(n),
                             n->primary && n->slots == 0 ? ": serves no slot (replaced)" : "",
                             n->linked ? "" : ", link disconnected");
        else if (!n->reached)
            finding_evidence(f, "%s %s (%.8s) not read: %s", n->primary ? "primary" : "replica",
                             n->addr, n->id, n->error);
    }
    if (r->nodes_truncated)
        finding_evidence(f, "more than %d nodes: the rest not listed", REDIS_NODES_MAX);
    finding_evidence(f,
                     "%d of %d nodes read (INFO): the keyspace, eviction and L2 key numbers "
                     "are their sums",
                     r->nodes_reached, r->n_nodes);
    finding_source(f, "CLUSTER NODES from %s; INFO from each node", r->where);
    if (sev == FINDING_OK)
        return;
    if (fail > 0)
        finding_fix(f, "restart the failed nodes: a primary that was replaced rejoins as a "
                       "replica; a node gone for good is forgotten with "
                       "redis-cli --cluster call SEED:PORT CLUSTER FORGET <id>");
    if (unread > 0)
        finding_fix(f, "the cluster still counts nodes this host cannot read: check the network "
                       "path and the nodes' bind address (cluster-announce-ip)");
}

/* A primary without a replica loses its slots with it (no failover). */
static void rule_replicas(const struct redis_facts *r, struct finding_list *out)
{
    int alone = 0, primaries = 0, least = -1;
    for (int i = 0; i < r->n_nodes; i++) {
        const struct redis_node *n = &r->nodes[i];
        if (!n->primary || n->slots == 0 || failing(n))
            continue;
        primaries++;
        alone += n->replicas == 0;
        least = least < 0 || n->replicas < least ? n->replicas : least;
    }
    if (primaries == 0)
        return;
    if (alone == 0) {
        struct finding *f = finding_add(out, "redis", "redis-cluster-replicas", FINDING_OK,
                                        "every primary has a replica (at least %d each)", least);
        finding_source(f, "CLUSTER NODES from %s", r->where);
        return;
    }
    struct finding *f = finding_add(out, "redis", "redis-cluster-replicas", FINDING_WARNING,
                                    "%d of %d primaries have no replica", alone, primaries);
    for (int i = 0; i < r->n_nodes; i++) {
        const struct redis_node *n = &r->nodes[i];
        if (n->primary && n->slots > 0 && !failing(n) && n->replicas == 0)
            finding_evidence(f, "primary %s (%.8s): slots %s (%d), no replica", n->addr, n->id,
                             n->ranges, n->slots);
    }
    finding_source(f, "CLUSTER NODES from %s", r->where);
    finding_fix(f, "if one of them fails its slots stay unserved until it is back: add a "
                   "replica each (redis-cli --cluster add-node NEW:PORT SEED:PORT --cluster-slave "
                   "--cluster-master-id <id>)");
}

void rules_redis__cluster(const struct redis_facts *r, struct finding_list *out)
{
    rule_slots(r, out);
    rule_nodes(r, out);
    rule_replicas(r, out);
}
