/* The Redis client's pure parsers (unit-tested): redis://, cluster and sentinel URLs, the Redis
 * Cluster CRC16 and slot of a key, and MOVED/ASK replies. */
#include "cache/l2redis.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parsing (pure, unit-tested) ---- */

static int l2redis__parse_hostport(const char *s, size_t n, char *host, size_t hostlen, int *port)
{
    const char *colon = NULL;
    for (size_t i = n; i > 0; i--)
        if (s[i - 1] == ':') {
            colon = s + i - 1;
            break;
        }
    if (colon == NULL || colon == s || (size_t)(colon - s) >= hostlen)
        return -1;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') { /* [::1]:7000 */
        h++;
        hl -= 2;
    }
    long v = 0;
    const char *p = colon + 1;
    if (p == s + n)
        return -1;
    for (; p < s + n; p++) {
        if (*p < '0' || *p > '9' || (v = v * 10 + (*p - '0')) > 65535)
            return -1;
    }
    if (v == 0)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)v;
    return 0;
}

int l2redis_parse_url(const char *url, char *host, size_t hostlen, int *port, int *db, char *err,
                      size_t errlen)
{
    *port = 6379;
    *db = 0;
    if (strncmp(url, "unix://", 7) == 0) {
        snprintf(host, hostlen, "%s", url + 7);
        *port = -1;
        return 0;
    }
    if (strncmp(url, L2REDIS_CLUSTER_SCHEME, strlen(L2REDIS_CLUSTER_SCHEME)) == 0) {
        /* the first seed; l2redis_parse_seeds reads them all */
        const char *p = url + strlen(L2REDIS_CLUSTER_SCHEME);
        size_t n = strcspn(p, ",");
        if (l2redis__parse_hostport(p, n, host, hostlen, port) == -1) {
            snprintf(err, errlen, "'%.*s' is not host:port", (int)(n < 200 ? n : 200), p);
            return -1;
        }
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "'%s' is not a redis:// URL", url);
        return -1;
    }
    const char *p = url + 8;
    const char *at = strchr(p, '@');
    if (at != NULL)
        p = at + 1; /* credentials are not supported; a local Redis has none */
    const char *end = p + strcspn(p, ":/");
    size_t hl = (size_t)(end - p);
    if (hl == 0 || hl >= hostlen) {
        snprintf(err, errlen, "'%s': missing or long host", url);
        return -1;
    }
    memcpy(host, p, hl);
    host[hl] = '\0';
    p = end;
    if (*p == ':') {
        char *e;
        long v = strtol(p + 1, &e, 10);
        if (v <= 0 || v > 65535) {
            snprintf(err, errlen, "'%s': bad port", url);
            return -1;
        }
        *port = (int)v;
        p = e;
    }
    if (*p == '/' && p[1] != '\0') {
        char *e;
        long v = strtol(p + 1, &e, 10);
        if (v < 0 || v > 1000 || *e != '\0') {
            snprintf(err, errlen, "'%s': bad database number", url);
            return -1;
        }
        *db = (int)v;
    }
    return 0;
}

/* "host:port,host:port" up to the end of <p> or its first '/'. */
static int l2redis__parse_list(const char *p, char (*hosts)[64], int *ports, size_t max, char *err,
                               size_t errlen)
{
    int n = 0;
    while (*p != '\0' && *p != '/') {
        size_t len = strcspn(p, ",/");
        if ((size_t)n == max) {
            snprintf(err, errlen, "more than %zu seeds", max);
            return -1;
        }
        if (l2redis__parse_hostport(p, len, hosts[n], 64, &ports[n]) == -1) {
            snprintf(err, errlen, "'%.*s' is not host:port", (int)(len < 200 ? len : 200), p);
            return -1;
        }
        n++;
        p += len;
        if (*p == ',')
            p++;
    }
    if (n == 0) {
        snprintf(err, errlen, "no node given");
        return -1;
    }
    return n;
}

int l2redis_parse_seeds(const char *url, char (*hosts)[64], int *ports, size_t max, char *err,
                        size_t errlen)
{
    size_t sl = strlen(L2REDIS_CLUSTER_SCHEME);
    if (strncmp(url, L2REDIS_CLUSTER_SCHEME, sl) != 0) {
        snprintf(err, errlen, "'%s' is not a cluster URL", url);
        return -1;
    }
    return l2redis__parse_list(url + sl, hosts, ports, max, err, errlen);
}

int l2redis_parse_sentinels(const char *url, char (*hosts)[64], int *ports, size_t max,
                            char *master, size_t masterlen, char *err, size_t errlen)
{
    size_t sl = strlen(L2REDIS_SENTINEL_SCHEME);
    if (strncmp(url, L2REDIS_SENTINEL_SCHEME, sl) != 0) {
        snprintf(err, errlen, "'%s' is not a sentinel URL", url);
        return -1;
    }
    int n = l2redis__parse_list(url + sl, hosts, ports, max, err, errlen);
    const char *slash = strchr(url + sl, '/');
    if (n > 0 && (slash == NULL || slash[1] == '\0' || strlen(slash + 1) >= masterlen ||
                  strpbrk(slash + 1, "/, ") != NULL)) {
        snprintf(err, errlen, "'%s': no master name after the sentinels", url);
        return -1;
    }
    if (n > 0)
        snprintf(master, masterlen, "%s", slash + 1);
    return n;
}

/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as the Redis Cluster spec. */
uint16_t l2redis_crc16(const char *s, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((unsigned char)s[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

bool l2redis_is_ip(const char *host)
{
    unsigned char bin[16];
    return inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1;
}

unsigned l2redis_slot(const char *key, size_t n)
{
    const char *open = memchr(key, '{', n);
    if (open != NULL) {
        size_t rest = n - (size_t)(open + 1 - key);
        const char *close = memchr(open + 1, '}', rest);
        if (close != NULL && close > open + 1) /* "{}" hashes the whole key */
            return l2redis_crc16(open + 1, (size_t)(close - open - 1)) & (L2REDIS_SLOTS - 1);
    }
    return l2redis_crc16(key, n) & (L2REDIS_SLOTS - 1);
}

int l2redis_parse_redirect(const char *s, size_t n, unsigned *slot, char *host, size_t hostlen,
                           int *port)
{
    int kind;
    size_t skip;
    if (n > 6 && memcmp(s, "MOVED ", 6) == 0) {
        kind = L2REDIS_MOVED;
        skip = 6;
    } else if (n > 4 && memcmp(s, "ASK ", 4) == 0) {
        kind = L2REDIS_ASK;
        skip = 4;
    } else {
        return 0;
    }
    const char *p = s + skip, *end = s + n;
    unsigned v = 0;
    const char *d = p;
    while (p < end && *p >= '0' && *p <= '9' && v < L2REDIS_SLOTS)
        v = v * 10 + (unsigned)(*p++ - '0');
    if (p == d || p >= end || *p != ' ' || v >= L2REDIS_SLOTS)
        return -1;
    p++;
    if (l2redis__parse_hostport(p, (size_t)(end - p), host, hostlen, port) == -1)
        return -1;
    *slot = v;
    return kind;
}
