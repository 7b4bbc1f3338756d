/* Redis probe: INFO, SLOWLOG GET 5 and a few timed PINGs over a blocking hiredis connection with
 * connect and command timeouts. The only file of src/doctor that includes hiredis. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "core/clock.h"
#include "doctor/internal.h"
#include "doctor/rules.h"

/* What one reply may cost: INFO all is some 10 KB and SLOWLOG GET 5 about 60 objects. A peer that
 * announces a gigabyte bulk string or a two-billion-element array is not a Redis to diagnose. */
#define PROBE_REDIS_MAX_REPLY (16u * 1024 * 1024)
#define PROBE_REDIS_MAX_OBJECTS 4096

/* hiredis's object constructors, counted per reply. */
struct redis_limit {
    const redisReplyObjectFunctions *base;
    redisReplyObjectFunctions fns;
    unsigned objects;
    bool over; // the reply went past PROBE_REDIS_MAX_OBJECTS
};

static bool limit_count(const redisReadTask *t, int elements)
{
    struct redis_limit *l = t->privdata;
    if (elements > (int)(PROBE_REDIS_MAX_OBJECTS - l->objects) ||
        ++l->objects > PROBE_REDIS_MAX_OBJECTS)
        l->over = true;
    return !l->over;
}
static void *limit_string(const redisReadTask *t, char *s, size_t n)
{
    struct redis_limit *l = t->privdata;
    return limit_count(t, 0) ? l->base->createString(t, s, n) : NULL;
}
static void *limit_array(const redisReadTask *t, int n)
{
    struct redis_limit *l = t->privdata;
    return limit_count(t, n) ? l->base->createArray(t, n) : NULL;
}
static void *limit_integer(const redisReadTask *t, long long v)
{
    struct redis_limit *l = t->privdata;
    return limit_count(t, 0) ? l->base->createInteger(t, v) : NULL;
}
static void *limit_nil(const redisReadTask *t)
{
    struct redis_limit *l = t->privdata;
    return limit_count(t, 0) ? l->base->createNil(t) : NULL;
}

static void limit_attach(redisContext *c, struct redis_limit *l)
{
    l->base = c->reader->fn;
    l->fns = *l->base;
    l->fns.createString = limit_string;
    l->fns.createArray = limit_array;
    l->fns.createInteger = limit_integer;
    l->fns.createNil = limit_nil;
    c->reader->fn = &l->fns;
    c->reader->privdata = l;
}

static redisReply *set_err(redisContext *c, int err, const char *what)
{
    c->err = err;
    snprintf(c->errstr, sizeof(c->errstr), "%s", what);
    return NULL;
}

/* redisCommand() with bounds: a reply of at most PROBE_REDIS_MAX_REPLY unparsed bytes and
 * PROBE_REDIS_MAX_OBJECTS objects. NULL with c->err/errstr set on failure. The time is bounded
 * per read by the socket timeout; a reply trickled byte by byte is left to the probe's guard
 * (doctor.c abandons the probe at its deadline and says so). */
static redisReply *command(redisContext *c, struct redis_limit *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAppendCommand(c, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK)
        return NULL;
    int done = 0;
    while (!done)
        if (redisBufferWrite(c, &done) == REDIS_ERR)
            return NULL;
    l->objects = 0;
    l->over = false;
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK)
            return set_err(c, REDIS_ERR_PROTOCOL,
                           l->over ? "a reply with too many elements" : c->reader->errstr);
        if (reply != NULL)
            return reply;
        if (c->reader->len - c->reader->pos > PROBE_REDIS_MAX_REPLY)
            return set_err(c, REDIS_ERR_PROTOCOL, "a reply over 16 MiB");
        if (redisBufferRead(c) == REDIS_ERR)
            return NULL;
    }
}

/* No counter a server reports gets near 2^56; a larger value is a bad reply, clamped so that the
 * rules can add up REDIS_NODES_MAX nodes' counters (and hits + misses) without overflowing. */
#define INFO_NUM_LIMIT (1LL << 56)

/* Pulls "key:value" out of INFO text; returns the value as a number, or <dflt>. */
static long long info_num(const char *text, const char *key, long long dflt)
{
    size_t n = strlen(key);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, key, n) == 0 && p[n] == ':') {
            long long v = strtoll(p + n + 1, NULL, 10);
            return v > INFO_NUM_LIMIT ? INFO_NUM_LIMIT : v < -INFO_NUM_LIMIT ? -INFO_NUM_LIMIT : v;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return dflt;
}

static void info_str(const char *text, const char *key, char *out, size_t outlen)
{
    size_t n = strlen(key);
    out[0] = '\0';
    for (const char *p = text; p && *p;) {
        if (strncmp(p, key, n) == 0 && p[n] == ':') {
            p += n + 1;
            size_t len = strcspn(p, "\r\n");
            snprintf(out, outlen, "%.*s", (int)len, p);
            return;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
}

void probe_redis__parse_info(const char *text, struct redis_facts *f)
{
    f->hits = info_num(text, "keyspace_hits", 0);
    f->misses = info_num(text, "keyspace_misses", 0);
    f->evicted_keys = info_num(text, "evicted_keys", 0);
    f->used_memory = info_num(text, "used_memory", 0);
    f->used_memory_peak = info_num(text, "used_memory_peak", 0);
    f->maxmemory = info_num(text, "maxmemory", 0);
    info_str(text, "maxmemory_policy", f->policy, sizeof(f->policy));
    f->connected_clients = info_num(text, "connected_clients", 0);
    f->blocked_clients = info_num(text, "blocked_clients", 0);
    f->maxclients = info_num(text, "maxclients", 0);
    f->rejected_connections = info_num(text, "rejected_connections", 0);
}

/* Splits "redis://[user:password@]host[:port][/db]" (also "host:port"). Returns 0 or -1. */
int probe_redis_parse_url(const char *url, char *host, size_t hostlen, int *port, char *pass,
                          size_t passlen)
{
    const char *p = url;
    if (strncmp(p, "redis://", 8) == 0)
        p += 8;
    else if (strstr(p, "://"))
        return -1;
    pass[0] = '\0';
    const char *at = strchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        snprintf(pass, passlen, "%.*s", (int)(at - pw), pw);
        p = at + 1;
    }
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= hostlen)
        return -1;
    snprintf(host, hostlen, "%.*s", (int)hl, p);
    *port = 6379;
    if (p[hl] == ':') {
        char *end;
        long v = strtol(p + hl + 1, &end, 10);
        if (v <= 0 || v > 65535 || (*end && *end != '/'))
            return -1;
        *port = (int)v;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* SLOWLOG GET 5: each entry is [id, timestamp, duration µs, [args...], client, name]; the
 * command is rebuilt from its arguments, cut to fit. A malformed reply yields fewer entries, never
 * a crash. */
static void read_slowlog(redisContext *c, struct redis_limit *l, struct redis_facts *f)
{
    redisReply *r = command(c, l, "SLOWLOG GET 5");
    if (r == NULL)
        return;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && f->n_slow < 5; i++) {
        redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 4)
            continue;
        struct redis_slow *s = &f->slow[f->n_slow++];
        s->id = e->element[0]->integer;
        s->duration_us = e->element[2]->integer;
        size_t used = 0;
        s->command[0] = '\0';
        redisReply *args = e->element[3];
        for (size_t k = 0; args->type == REDIS_REPLY_ARRAY && k < args->elements; k++) {
            if (args->element[k]->type != REDIS_REPLY_STRING || used + 2 >= sizeof(s->command))
                break;
            used +=
                (size_t)snprintf(s->command + used, sizeof(s->command) - used, "%s%.*s",
                                 k ? " " : "", (int)args->element[k]->len, args->element[k]->str);
            if (used >= sizeof(s->command))
                used = sizeof(s->command) - 1;
        }
    }
    freeReplyObject(r);
}

/* apigate's L2 writes <prefix>{<path>}<key> and <prefix>inv:{<path>} (the default redis_prefix
 * "apigate:"). SCAN touches no keyspace counter; one step is a sample, enough to know the L2 is
 * here. -1 when SCAN failed. */
static long long scan_l2_keys(redisContext *c, struct redis_limit *l)
{
    long long n = -1;
    redisReply *r = command(c, l, "SCAN 0 MATCH apigate:* COUNT 1000");
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_ARRAY)
        n = (long long)r->element[1]->elements;
    if (r)
        freeReplyObject(r);
    return n;
}

/* hiredis reports a read timeout as the errno text of EAGAIN; say what happened instead. */
static const char *conn_error(const redisContext *c)
{
    if (c->err == REDIS_ERR_IO && strcmp(c->errstr, strerror(EAGAIN)) == 0)
        return "timed out waiting for a reply";
    return c->errstr;
}

/* The value of <key> in a reply that is a flat array of field names and values (SENTINEL
 * MASTERS' entries); "" when absent. */
static const char *field_of(const redisReply *m, const char *key)
{
    for (size_t i = 0; m->type == REDIS_REPLY_ARRAY && i + 1 < m->elements; i += 2)
        if (m->element[i]->type == REDIS_REPLY_STRING &&
            m->element[i + 1]->type == REDIS_REPLY_STRING && strcmp(m->element[i]->str, key) == 0)
            return m->element[i + 1]->str;
    return "";
}

static bool has_flag_word(const char *flags, const char *word)
{
    return strstr(flags, word) != NULL;
}

/* A Sentinel: the primaries it monitors (SENTINEL MASTERS), their replicas in service (SENTINEL
 * REPLICAS) and whether a failover could be authorized (SENTINEL CKQUORUM). */
static void read_sentinel(redisContext *c, struct redis_limit *l, struct redis_facts *f)
{
    redisReply *r = command(c, l, "SENTINEL MASTERS");
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements &&
                       f->n_masters < REDIS_SENTINEL_MASTERS;
         i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || field_of(e, "name")[0] == '\0')
            continue;
        struct redis_sentinel_master *m = &f->masters[f->n_masters++];
        memset(m, 0, sizeof(*m));
        snprintf(m->name, sizeof(m->name), "%.63s", field_of(e, "name"));
        snprintf(m->addr, sizeof(m->addr), "%.50s:%.8s", field_of(e, "ip"), field_of(e, "port"));
        snprintf(m->flags, sizeof(m->flags), "%.63s", field_of(e, "flags"));
        m->replicas = atoi(field_of(e, "num-slaves"));
        m->sentinels = atoi(field_of(e, "num-other-sentinels")) + 1;
        m->quorum = atoi(field_of(e, "quorum"));
    }
    if (r)
        freeReplyObject(r);
    for (int i = 0; i < f->n_masters; i++) {
        struct redis_sentinel_master *m = &f->masters[i];
        r = command(c, l, "SENTINEL REPLICAS %s", m->name);
        for (size_t k = 0; r && r->type == REDIS_REPLY_ARRAY && k < r->elements; k++) {
            const char *fl = field_of(r->element[k], "flags");
            m->replicas_ok += !has_flag_word(fl, "s_down") && !has_flag_word(fl, "o_down") &&
                              !has_flag_word(fl, "disconnected");
        }
        if (r)
            freeReplyObject(r);
        r = command(c, l, "SENTINEL CKQUORUM %s", m->name);
        m->ckquorum_ok = r && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING);
        snprintf(m->ckquorum, sizeof(m->ckquorum), "%.159s",
                 r && r->str ? r->str : "no answer to SENTINEL CKQUORUM");
        if (r)
            freeReplyObject(r);
    }
}

/* Keeps the 5 slowest of <f>'s entries and <more>'s, those of <more> named by <addr>. */
static void merge_slow(struct redis_facts *f, const struct redis_facts *more, const char *addr)
{
    for (int i = 0; i < more->n_slow; i++) {
        struct redis_slow s = more->slow[i];
        snprintf(s.command, sizeof(s.command), "%s: %.*s", addr, 120, more->slow[i].command);
        int at = f->n_slow < 5 ? f->n_slow++ : -1;
        if (at < 0) { // full: replace the fastest when this one is slower
            at = 0;
            for (int k = 1; k < 5; k++)
                if (f->slow[k].duration_us < f->slow[at].duration_us)
                    at = k;
            if (f->slow[at].duration_us >= s.duration_us)
                continue;
        }
        f->slow[at] = s;
    }
}

/* One cluster node other than the seed: INFO all, a SCAN step on a primary, SLOWLOG GET 5, each
 * bounded by the timeout. The node's numbers go into <n>, its slow commands into <f>. */
static void read_node(struct redis_node *n, const char *pass, int timeout_ms, struct redis_facts *f)
{
    char host[64];
    int port;
    const char *colon = strrchr(n->addr, ':');
    if (colon == NULL || (size_t)(colon - n->addr) >= sizeof(host)) {
        snprintf(n->error, sizeof(n->error), "no address");
        return;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - n->addr), n->addr);
    port = atoi(colon + 1);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    struct redis_limit lim;
    redisReply *r = NULL;
    const char *fail = NULL;
    if (c == NULL)
        fail = "out of memory";
    else if (c->err)
        fail = conn_error(c);
    else if (redisSetTimeout(c, tv) != REDIS_OK)
        fail = "cannot set the timeout";
    if (fail == NULL)
        limit_attach(c, &lim);
    if (fail == NULL && pass[0]) {
        r = command(c, &lim, "AUTH %s", pass);
        if (r == NULL || r->type == REDIS_REPLY_ERROR)
            fail = r ? r->str : conn_error(c);
        else
            freeReplyObject(r), r = NULL;
    }
    if (fail == NULL) {
        r = command(c, &lim, "INFO all");
        if (r == NULL || r->type != REDIS_REPLY_STRING)
            fail = r ? (r->type == REDIS_REPLY_ERROR ? r->str : "INFO: unexpected reply")
                     : conn_error(c);
    }
    if (fail != NULL) {
        snprintf(n->error, sizeof(n->error), "%.95s", fail);
    } else {
        struct redis_facts one;
        memset(&one, 0, sizeof(one));
        probe_redis__parse_info(r->str, &one);
        n->reached = true;
        n->used_memory = one.used_memory;
        n->used_memory_peak = one.used_memory_peak;
        n->maxmemory = one.maxmemory;
        snprintf(n->policy, sizeof(n->policy), "%s", one.policy);
        n->evicted_keys = one.evicted_keys;
        n->hits = one.hits;
        n->misses = one.misses;
        n->connected_clients = one.connected_clients;
        n->maxclients = one.maxclients;
        n->rejected_connections = one.rejected_connections;
        if (n->primary) {
            long long keys = scan_l2_keys(c, &lim);
            n->apigate_keys = keys > 0 ? keys : 0;
        }
        read_slowlog(c, &lim, &one);
        merge_slow(f, &one, n->addr);
    }
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
}

/* A cluster seen from the seed <c> (<host>:<port>): CLUSTER INFO and CLUSTER NODES, then every
 * node with an address that the cluster does not mark failed is read, one after the other; once
 * twice the timeout has passed no further node is asked (a node that does not answer costs a
 * timeout per step; the rest are then listed as not read, and the probe ends within doctor's
 * deadline or is reported as probe-timeout, never waited for).
 * The keyspace, eviction and L2 key counts become sums over the nodes read. */
static void read_cluster(redisContext *c, struct redis_limit *lim, const char *host, int port,
                         const char *pass, int timeout_ms, struct redis_facts *f)
{
    redisReply *r = command(c, lim, "CLUSTER INFO");
    if (r && r->type == REDIS_REPLY_STRING)
        probe_redis__parse_cluster_info(r->str, f);
    if (r)
        freeReplyObject(r);
    r = command(c, lim, "CLUSTER NODES");
    if (r && r->type == REDIS_REPLY_STRING)
        probe_redis__parse_nodes(r->str, f);
    if (r)
        freeReplyObject(r);
    /* the seed's numbers, read already */
    struct redis_node seed;
    memset(&seed, 0, sizeof(seed));
    seed.used_memory = f->used_memory;
    seed.used_memory_peak = f->used_memory_peak;
    seed.maxmemory = f->maxmemory;
    snprintf(seed.policy, sizeof(seed.policy), "%s", f->policy);
    seed.evicted_keys = f->evicted_keys;
    seed.hits = f->hits;
    seed.misses = f->misses;
    seed.connected_clients = f->connected_clients;
    seed.maxclients = f->maxclients;
    seed.rejected_connections = f->rejected_connections;
    seed.apigate_keys = f->apigate_keys;
    char seed_addr[64];
    snprintf(seed_addr, sizeof(seed_addr), "%.50s:%d", host, port);
    struct redis_facts slow; // the seed's slow commands, named like the other nodes'
    memcpy(slow.slow, f->slow, sizeof(f->slow));
    slow.n_slow = f->n_slow;
    f->n_slow = 0;
    merge_slow(f, &slow, seed_addr);
    uint64_t t0 = clock_now_ns();
    f->nodes_reached = 0;
    for (int i = 0; i < f->n_nodes; i++) {
        struct redis_node *n = &f->nodes[i];
        if (n->myself) {
            struct redis_node keep = *n;
            *n = seed;
            memcpy(n->id, keep.id, sizeof(n->id));
            memcpy(n->primary_id, keep.primary_id, sizeof(n->primary_id));
            n->primary = keep.primary;
            n->myself = true;
            n->linked = true;
            n->slots = keep.slots;
            n->replicas = keep.replicas;
            memcpy(n->ranges, keep.ranges, sizeof(n->ranges));
            snprintf(n->addr, sizeof(n->addr), "%s", seed_addr);
            n->reached = true;
        } else if (n->fail || n->noaddr) {
            snprintf(n->error, sizeof(n->error), "not asked: %s",
                     n->fail ? "the cluster marks it failed" : "no address");
        } else if ((clock_now_ns() - t0) / 1000000 > (uint64_t)timeout_ms * 2) {
            snprintf(n->error, sizeof(n->error), "not asked: the probe's time ran out");
        } else {
            read_node(n, pass, timeout_ms, f);
        }
        if (n->reached)
            probe_redis__add_node(f, n);
    }
}

/* Blocking hiredis with a connect timeout and a per-command timeout: INFO all, SLOWLOG, then
 * five PINGs whose median is the latency (the first may include a slow path). */
int probe_redis_run(const char *url, int timeout_ms, struct redis_facts *f,
                    struct finding_list *out)
{
    char host[256], pass[128];
    int port;
    if (probe_redis_parse_url(url, host, sizeof(host), &port, pass, sizeof(pass)) < 0) {
        char safe[512];
        doctor__redact(url, safe, sizeof(safe));
        struct finding *fd = finding_add(out, "redis", "redis-unreachable", FINDING_CRITICAL,
                                         "cannot parse Redis URL '%s'", safe);
        finding_fix(fd, "use redis://[:password@]host:port[/db]");
        return -1;
    }
    snprintf(f->where, sizeof(f->where), "%.120s:%d", host, port);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    const char *fail = NULL;
    if (c == NULL)
        fail = "out of memory";
    else if (c->err)
        fail = conn_error(c);
    else if (redisSetTimeout(c, tv) != REDIS_OK)
        fail = "cannot set the timeout";
    struct redis_limit lim;
    if (fail == NULL)
        limit_attach(c, &lim);
    redisReply *r = NULL;
    if (fail == NULL && pass[0]) {
        r = command(c, &lim, "AUTH %s", pass);
        if (r == NULL || r->type == REDIS_REPLY_ERROR)
            fail = r ? r->str : conn_error(c);
    }
    if (fail == NULL) {
        if (r)
            freeReplyObject(r);
        r = command(c, &lim, "INFO all");
        if (r == NULL || r->type != REDIS_REPLY_STRING)
            fail = r ? (r->type == REDIS_REPLY_ERROR ? r->str : "INFO: unexpected reply")
                     : conn_error(c);
    }
    if (fail) {
        struct finding *fd = finding_add(out, "redis", "redis-unreachable", FINDING_CRITICAL,
                                         "cannot reach Redis at %s: %s", f->where, fail);
        finding_source(fd, "hiredis connect + INFO");
        finding_fix(fd, "check the URL, that redis-server runs, its bind address and password");
        if (r)
            freeReplyObject(r);
        if (c)
            redisFree(c);
        return -1;
    }
    probe_redis__parse_info(r->str, f);
    f->cluster = info_num(r->str, "cluster_enabled", 0) == 1;
    char mode[32];
    info_str(r->str, "redis_mode", mode, sizeof(mode));
    f->sentinel = strcmp(mode, "sentinel") == 0;
    freeReplyObject(r);
    if (f->sentinel) { // no keyspace, no SLOWLOG: what it monitors
        read_sentinel(c, &lim, f);
    } else {
        read_slowlog(c, &lim, f);
        long long keys = scan_l2_keys(c, &lim);
        f->apigate_keys = keys > 0 ? keys : 0;
    }
    double pings[5];
    int np = 0;
    for (int i = 0; i < 5; i++) {
        uint64_t t0 = clock_now_ns();
        r = command(c, &lim, "PING");
        if (r == NULL)
            break;
        freeReplyObject(r);
        pings[np++] = (double)(clock_now_ns() - t0) / 1e6;
    }
    qsort(pings, (size_t)np, sizeof(double), cmp_double);
    f->ping_ms = np ? pings[np / 2] : 0;
    if (f->cluster)
        read_cluster(c, &lim, host, port, pass, timeout_ms, f);
    redisFree(c);
    return 0;
}
