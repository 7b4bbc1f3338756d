/* l2redis_agree: one value agreed by every gateway of a Redis (SET NX, then GET), on blocking
 * hiredis contexts with bounded steps, for a worker's start: one Redis, a cluster (following
 * MOVED/ASK) or the primary the sentinels name. */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "cache/l2redis_priv.h"

/* ---- blocking, for a worker's start ---- */

/* One command and its reply on a blocking context; NULL with <err> set on any failure. */
static redisReply *l2redis__blocking(redisContext *c, int argc, const char **argv,
                                     const size_t *argl, char *err, size_t errlen)
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
static redisReply *l2redis__blocking_cluster(char *host, size_t hostlen, int *port,
                                             struct timeval tv, int argc, const char **argv,
                                             const size_t *argl, char *err, size_t errlen)
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
        if (!l2redis_is_ip(host)) { /* resolving it would block without a bound */
            snprintf(err, errlen, "%s: redirected to a host name (%.64s), not followed", argv[0],
                     host);
            return NULL;
        }
        asking = kind == L2REDIS_ASK;
    }
    snprintf(err, errlen, "%s: redirected more than %d times", argv[0], L2REDIS_MAX_REDIRECTS);
    return NULL;
}

/* The primary's URL (redis://ip:port) as the first sentinel that answers names it (blocking,
 * each step bounded by <tv>); 0, or -1 with <err> set. */
static int l2redis__sentinel_primary(const char *surl, struct timeval tv, char *url, size_t urllen,
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
            rep->element[1]->type == REDIS_REPLY_STRING && rep->element[0]->len < 64 &&
            l2redis_is_ip(rep->element[0]->str)) {
            snprintf(url, urllen, "redis://%s:%s", rep->element[0]->str, rep->element[1]->str);
            rc = 0;
        } else {
            snprintf(err, errlen, "sentinel %s:%d names no primary (by ip address) for '%s'",
                     hosts[i], ports[i], master);
        }
        freeReplyObject(rep);
        redisFree(c);
        if (rc == 0)
            return 0;
    }
    return -1;
}

/* l2redis_agree on a cluster: each seed in turn until one answers. */
static long l2redis__agree_cluster(const struct l2redis_conf *conf, const char *key,
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
            l2redis__blocking_cluster(host, sizeof(host), &port, tv, 4, set, setl, err, errlen);
        if (rep == NULL)
            continue;
        freeReplyObject(rep); /* OK (ours is set) or nil (another's is): GET tells which */
        const char *get[] = {"GET", key};
        size_t getl[] = {3, strlen(key)};
        rep = l2redis__blocking_cluster(host, sizeof(host), &port, tv, 2, get, getl, err, errlen);
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
        return l2redis__agree_cluster(conf, key, proposal, plen, out, outlen, minlen, tv, err,
                                      errlen);
    if (strncmp(conf->url, L2REDIS_SENTINEL_SCHEME, strlen(L2REDIS_SENTINEL_SCHEME)) == 0) {
        /* the sentinels name the primary, then as with one Redis */
        char url[128];
        if (l2redis__sentinel_primary(conf->url, tv, url, sizeof(url), err, errlen) == -1)
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
        if ((rep = l2redis__blocking(c, 2, sel, sell, err, errlen)) == NULL)
            goto out;
        freeReplyObject(rep);
    }
    const char *set[] = {"SET", key, proposal, "NX"};
    size_t setl[] = {3, strlen(key), plen, 2};
    if ((rep = l2redis__blocking(c, 4, set, setl, err, errlen)) == NULL)
        goto out;
    freeReplyObject(rep); /* OK (ours is set) or nil (another's is): GET tells which */
    const char *get[] = {"GET", key};
    size_t getl[] = {3, strlen(key)};
    if ((rep = l2redis__blocking(c, 2, get, getl, err, errlen)) == NULL)
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
