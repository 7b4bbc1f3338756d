/* Redis Cluster texts for the Redis probe: CLUSTER NODES (who serves which slots, who failed, who
 * replicates whom) and CLUSTER INFO, and the sums of the nodes' INFO numbers. Pure functions, no
 * hiredis (probe_redis.c does the I/O): unit tests feed them fixed texts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doctor/internal.h"
#include "doctor/rules.h"

/* The next space-separated field of <*p> (up to the end of the line) into <out>; 0 at the end. */
static size_t next_field(const char **p, const char *eol, char *out, size_t outlen)
{
    while (*p < eol && **p == ' ')
        (*p)++;
    size_t n = 0;
    while (*p + n < eol && (*p)[n] != ' ')
        n++;
    snprintf(out, outlen, "%.*s", (int)(n < outlen ? n : outlen - 1), *p);
    *p += n;
    return n;
}

/* "a,b,c" contains <flag> as a whole item. */
static bool has_flag(const char *flags, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *p = flags; p && *p; p = strchr(p, ','), p = p ? p + 1 : NULL)
        if (strncmp(p, flag, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

/* A slot field: "5461" or "0-5460" (an importing/migrating "[...]" is not served here). */
static int slot_count(const char *s)
{
    if (s[0] == '[')
        return 0;
    char *end;
    long lo = strtol(s, &end, 10);
    long hi = lo;
    if (*end == '-')
        hi = strtol(end + 1, &end, 10);
    if (*end != '\0' || lo < 0 || hi < lo || hi > 16383)
        return 0;
    return (int)(hi - lo + 1);
}

static void append_range(struct redis_node *n, const char *s)
{
    size_t used = strlen(n->ranges);
    if (used + strlen(s) + 2 >= sizeof(n->ranges)) {
        if (used + 4 < sizeof(n->ranges) && strcmp(n->ranges + used - 3, "...") != 0)
            snprintf(n->ranges + used, sizeof(n->ranges) - used, " ...");
        return;
    }
    snprintf(n->ranges + used, sizeof(n->ranges) - used, "%s%s", used ? " " : "", s);
}

/* <id> <ip:port@cport[,hostname]> <flags> <primary> <ping> <pong> <epoch> <link> <slot>... */
void probe_redis__parse_nodes(const char *text, struct redis_facts *f)
{
    f->n_nodes = 0;
    f->nodes_truncated = false;
    for (const char *p = text; p && *p;) {
        const char *eol = p + strcspn(p, "\r\n");
        char id[64], addr[128], flags[128], primary[64], skip[32], link[32], slot[64];
        const char *q = p;
        bool ok = next_field(&q, eol, id, sizeof(id)) > 0 &&
                  next_field(&q, eol, addr, sizeof(addr)) > 0 &&
                  next_field(&q, eol, flags, sizeof(flags)) > 0 &&
                  next_field(&q, eol, primary, sizeof(primary)) > 0 &&
                  next_field(&q, eol, skip, sizeof(skip)) > 0 &&
                  next_field(&q, eol, skip, sizeof(skip)) > 0 &&
                  next_field(&q, eol, skip, sizeof(skip)) > 0 &&
                  next_field(&q, eol, link, sizeof(link)) > 0;
        if (ok && f->n_nodes == REDIS_NODES_MAX) {
            f->nodes_truncated = true;
            ok = false;
        }
        if (ok) {
            struct redis_node *n = &f->nodes[f->n_nodes++];
            memset(n, 0, sizeof(*n));
            snprintf(n->id, sizeof(n->id), "%.40s", id);
            addr[strcspn(addr, "@,")] = '\0'; // the bus port and the host name go
            snprintf(n->addr, sizeof(n->addr), "%.63s", addr);
            n->primary = has_flag(flags, "master");
            n->myself = has_flag(flags, "myself");
            n->fail = has_flag(flags, "fail");
            n->pfail = has_flag(flags, "fail?");
            n->noaddr = has_flag(flags, "noaddr") || has_flag(flags, "handshake") ||
                        addr[0] == ':' || strcmp(addr, ":0") == 0;
            n->linked = strcmp(link, "connected") == 0;
            if (!n->primary && strcmp(primary, "-") != 0)
                snprintf(n->primary_id, sizeof(n->primary_id), "%.40s", primary);
            while (next_field(&q, eol, slot, sizeof(slot)) > 0) {
                int c = slot_count(slot);
                if (c > 0) {
                    n->slots += c;
                    append_range(n, slot);
                }
            }
        }
        p = eol;
        while (*p == '\r' || *p == '\n')
            p++;
    }
    /* live replicas per primary */
    for (int i = 0; i < f->n_nodes; i++) {
        struct redis_node *r = &f->nodes[i];
        if (r->primary || r->fail || r->pfail || r->primary_id[0] == '\0')
            continue;
        for (int j = 0; j < f->n_nodes; j++)
            if (f->nodes[j].primary && strcmp(f->nodes[j].id, r->primary_id) == 0)
                f->nodes[j].replicas++;
    }
}

static int info_int(const char *text, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, key, n) == 0 && p[n] == ':')
            return atoi(p + n + 1);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

void probe_redis__parse_cluster_info(const char *text, struct redis_facts *f)
{
    f->cluster_state[0] = '\0';
    const char *s = strstr(text, "cluster_state:");
    if (s != NULL && (s == text || s[-1] == '\n')) {
        s += strlen("cluster_state:");
        snprintf(f->cluster_state, sizeof(f->cluster_state), "%.*s", (int)strcspn(s, "\r\n"), s);
    }
    f->slots_assigned = info_int(text, "cluster_slots_assigned");
    f->slots_ok = info_int(text, "cluster_slots_ok");
    f->slots_pfail = info_int(text, "cluster_slots_pfail");
    f->slots_fail = info_int(text, "cluster_slots_fail");
    f->known_nodes = info_int(text, "cluster_known_nodes");
}

static double fill(long long used, long long max)
{
    return max > 0 ? (double)used / (double)max : 0;
}

void probe_redis__add_node(struct redis_facts *f, const struct redis_node *n)
{
    if (f->nodes_reached++ == 0) { // the first one read sets the totals
        f->hits = f->misses = f->evicted_keys = f->apigate_keys = f->rejected_connections = 0;
        f->mem_node[0] = f->clients_node[0] = '\0';
    }
    f->hits += n->hits;
    f->misses += n->misses;
    f->evicted_keys += n->evicted_keys;
    f->rejected_connections += n->rejected_connections;
    if (n->primary)
        f->apigate_keys += n->apigate_keys;
    /* memory: the node closest to its maxmemory (without one, the biggest) */
    bool fuller = f->mem_node[0] == '\0' ||
                  (n->maxmemory > 0 || f->maxmemory > 0
                       ? fill(n->used_memory, n->maxmemory) > fill(f->used_memory, f->maxmemory)
                       : n->used_memory > f->used_memory);
    if (fuller) {
        f->used_memory = n->used_memory;
        f->used_memory_peak = n->used_memory_peak;
        f->maxmemory = n->maxmemory;
        snprintf(f->policy, sizeof(f->policy), "%s", n->policy);
        snprintf(f->mem_node, sizeof(f->mem_node), "%s", n->addr);
    }
    if (f->clients_node[0] == '\0' ||
        fill(n->connected_clients, n->maxclients) > fill(f->connected_clients, f->maxclients)) {
        f->connected_clients = n->connected_clients;
        f->maxclients = n->maxclients;
        snprintf(f->clients_node, sizeof(f->clients_node), "%s", n->addr);
    }
}
