/* A Redis host's address from a resolver thread (see redisdns.h). */
#include "gateway/redisdns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "cache/l2redis.h"
#include "core/log.h"
#include "net/resolve.h"

void redisdns_start(struct redisdns *d, const char *url, const char *who)
{
    char host[256], err[256];
    int port, db;
    unsigned char bin[sizeof(struct in6_addr)];
    if (l2redis_parse_url(url, host, sizeof(host), &port, &db, err, sizeof(err)) == -1 ||
        port == -1 || inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1)
        return;
    d->resolver = resolve_create(30000);
    d->name = resolve_add(d->resolver, host, port, err, sizeof(err));
    if (!resolve_has_addr(d->name))
        ag_log(AG_LOG_WARN, "%s: %s (Redis is used once the name resolves)", who, err);
    if (resolve_start(d->resolver) != 0)
        ag_log(AG_LOG_WARN, "%s: cannot start the resolver thread: %s", who, strerror(errno));
}

int redisdns_resolve(void *arg, char *ip, size_t iplen)
{
    struct redisdns *d = arg;
    struct sock_addr a;
    if (!resolve_get(d->name, atomic_fetch_add(&d->seq, 1), &a))
        return -1;
    const void *bin = a.ss.ss_family == AF_INET6
                          ? (const void *)&((const struct sockaddr_in6 *)&a.ss)->sin6_addr
                          : (const void *)&((const struct sockaddr_in *)&a.ss)->sin_addr;
    return inet_ntop(a.ss.ss_family, bin, ip, (socklen_t)iplen) != NULL ? 0 : -1;
}

int (*redisdns_hook(const struct redisdns *d))(void *, char *, size_t)
{
    return d->name != NULL ? redisdns_resolve : NULL;
}

void redisdns_stop(struct redisdns *d)
{
    resolve_destroy(d->resolver);
    d->resolver = NULL;
    d->name = NULL;
}
