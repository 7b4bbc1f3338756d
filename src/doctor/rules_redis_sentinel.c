/* Rules for a Redis Sentinel (SENTINEL MASTERS, REPLICAS, CKQUORUM): is each primary it monitors
 * up, is there a replica to promote, can the sentinels agree on a failover. Pure functions, like
 * rules_redis.c, which calls them when the probe found a Sentinel. */
#include "doctor/rules.h"

#include <stdio.h>
#include <string.h>

static void rule_master(const struct redis_facts *r, const struct redis_sentinel_master *m,
                        struct finding_list *out)
{
    bool down = strstr(m->flags, "s_down") != NULL || strstr(m->flags, "o_down") != NULL;
    /* with exactly <quorum> sentinels, losing one more leaves no failover */
    bool thin = m->sentinels - 1 < m->quorum;
    enum finding_sev sev = down || !m->ckquorum_ok       ? FINDING_CRITICAL
                           : m->replicas_ok == 0 || thin ? FINDING_WARNING
                                                         : FINDING_OK;
    struct finding *f;
    if (down)
        f = finding_add(out, "redis", "redis-sentinel", sev, "%s: primary %s is down (%s)", m->name,
                        m->addr, m->flags);
    else
        f = finding_add(out, "redis", "redis-sentinel", sev,
                        "%s: primary %s, %d of %d replicas in service, %d sentinels (quorum %d)",
                        m->name, m->addr, m->replicas_ok, m->replicas, m->sentinels, m->quorum);
    finding_evidence(f, "flags %s, num-slaves %d (%d in service), %d sentinels, quorum %d",
                     m->flags, m->replicas, m->replicas_ok, m->sentinels, m->quorum);
    finding_evidence(f, "SENTINEL CKQUORUM: %s", m->ckquorum);
    finding_evidence(f,
                     "this is a Sentinel: the keyspace, memory and slow commands are the "
                     "primary's (apigate doctor --redis redis://%s)",
                     m->addr);
    finding_source(f, "SENTINEL MASTERS, SENTINEL REPLICAS %s, SENTINEL CKQUORUM %s on %s", m->name,
                   m->name, r->where);
    if (down && m->replicas_ok == 0)
        finding_fix(f, "no replica in service to promote: start the primary again (or a replica "
                       "of it); until then every write and apigate's L2 lookups fail");
    else if (down)
        finding_fix(f,
                    "the sentinels should promote a replica within failover-timeout: if not, "
                    "check SENTINEL CKQUORUM %s on each sentinel and their logs",
                    m->name);
    if (!m->ckquorum_ok)
        finding_fix(f, "too few sentinels reachable to authorize a failover: start the missing "
                       "ones (at least 3 on separate hosts, quorum 2)");
    if (!down && m->replicas_ok == 0)
        finding_fix(f,
                    "no replica in service: a failure of the primary cannot fail over; start "
                    "one (replicaof %s)",
                    m->addr);
    if (!down && m->ckquorum_ok && thin)
        finding_fix(f,
                    "%d sentinels for a quorum of %d: losing one more leaves no failover; run "
                    "at least quorum + 1 (3 for quorum 2)",
                    m->sentinels, m->quorum);
}

void rules_redis__sentinel(const struct redis_facts *r, struct finding_list *out)
{
    if (r->n_masters == 0) {
        struct finding *f = finding_add(out, "redis", "redis-sentinel", FINDING_WARNING,
                                        "this Sentinel monitors no primary");
        finding_source(f, "SENTINEL MASTERS on %s", r->where);
        finding_fix(f, "sentinel monitor <name> <ip> <port> <quorum> in its configuration");
        return;
    }
    for (int i = 0; i < r->n_masters; i++)
        rule_master(r, &r->masters[i], out);
}
