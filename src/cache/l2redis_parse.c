/* The Redis client's pure parsers (unit-tested): redis://, cluster and sentinel URLs, the Redis
 * Cluster CRC16 and slot of a key, and MOVED/ASK replies; and the RESP formatter of commands. */
#include "cache/l2redis.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

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

/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as the Redis Cluster spec; one table
 * step per byte (the table is the bitwise loop run on each byte value, as Redis's crc16.c has
 * it): every cluster command computes a slot, and eight shifts per bit cost ~600 instructions
 * for a 20-byte hash tag. */
static const uint16_t l2redis__crc16_table[256] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7,
    0x8108, 0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef,
    0x1231, 0x0210, 0x3273, 0x2252, 0x52b5, 0x4294, 0x72f7, 0x62d6,
    0x9339, 0x8318, 0xb37b, 0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de,
    0x2462, 0x3443, 0x0420, 0x1401, 0x64e6, 0x74c7, 0x44a4, 0x5485,
    0xa56a, 0xb54b, 0x8528, 0x9509, 0xe5ee, 0xf5cf, 0xc5ac, 0xd58d,
    0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6, 0x5695, 0x46b4,
    0xb75b, 0xa77a, 0x9719, 0x8738, 0xf7df, 0xe7fe, 0xd79d, 0xc7bc,
    0x48c4, 0x58e5, 0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823,
    0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948, 0x9969, 0xa90a, 0xb92b,
    0x5af5, 0x4ad4, 0x7ab7, 0x6a96, 0x1a71, 0x0a50, 0x3a33, 0x2a12,
    0xdbfd, 0xcbdc, 0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a,
    0x6ca6, 0x7c87, 0x4ce4, 0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41,
    0xedae, 0xfd8f, 0xcdec, 0xddcd, 0xad2a, 0xbd0b, 0x8d68, 0x9d49,
    0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13, 0x2e32, 0x1e51, 0x0e70,
    0xff9f, 0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a, 0x9f59, 0x8f78,
    0x9188, 0x81a9, 0xb1ca, 0xa1eb, 0xd10c, 0xc12d, 0xf14e, 0xe16f,
    0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046, 0x6067,
    0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e,
    0x02b1, 0x1290, 0x22f3, 0x32d2, 0x4235, 0x5214, 0x6277, 0x7256,
    0xb5ea, 0xa5cb, 0x95a8, 0x8589, 0xf56e, 0xe54f, 0xd52c, 0xc50d,
    0x34e2, 0x24c3, 0x14a0, 0x0481, 0x7466, 0x6447, 0x5424, 0x4405,
    0xa7db, 0xb7fa, 0x8799, 0x97b8, 0xe75f, 0xf77e, 0xc71d, 0xd73c,
    0x26d3, 0x36f2, 0x0691, 0x16b0, 0x6657, 0x7676, 0x4615, 0x5634,
    0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9, 0xb98a, 0xa9ab,
    0x5844, 0x4865, 0x7806, 0x6827, 0x18c0, 0x08e1, 0x3882, 0x28a3,
    0xcb7d, 0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a,
    0x4a75, 0x5a54, 0x6a37, 0x7a16, 0x0af1, 0x1ad0, 0x2ab3, 0x3a92,
    0xfd2e, 0xed0f, 0xdd6c, 0xcd4d, 0xbdaa, 0xad8b, 0x9de8, 0x8dc9,
    0x7c26, 0x6c07, 0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1,
    0xef1f, 0xff3e, 0xcf5d, 0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8,
    0x6e17, 0x7e36, 0x4e55, 0x5e74, 0x2e93, 0x3eb2, 0x0ed1, 0x1ef0,
};

uint16_t l2redis_crc16(const char *s, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++)
        crc = (uint16_t)(crc << 8) ^ l2redis__crc16_table[((crc >> 8) ^ (unsigned char)s[i]) & 0xff];
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

/* "<c><n>\r\n" at <p>; the bytes written. */
static size_t l2redis__header(char *p, char c, size_t n)
{
    char digits[24];
    size_t d = 0;
    do {
        digits[d++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    size_t k = 0;
    p[k++] = c;
    while (d > 0)
        p[k++] = digits[--d];
    p[k++] = '\r';
    p[k++] = '\n';
    return k;
}

void l2redis_format(struct buf *out, int argc, const char *const *argv, const size_t *argl)
{
    size_t total = 24; /* "*<argc>\r\n" */
    for (int i = 0; i < argc; i++)
        total += 24 + argl[i] + 2;
    buf_reserve(out, total);
    char *p = buf_tail(out);
    size_t k = l2redis__header(p, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        k += l2redis__header(p + k, '$', argl[i]);
        if (argl[i] > 0)
            memcpy(p + k, argv[i], argl[i]);
        k += argl[i];
        p[k++] = '\r';
        p[k++] = '\n';
    }
    buf_commit(out, k);
}
