/* W3C traceparent and Server-Timing strings (see trace.h). No I/O except the one getrandom(2)
 * that seeds each thread's generator. */
#include "gateway/trace.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>

static _Thread_local uint64_t trace_state;
static _Thread_local bool trace_seeded;

void trace_seed(uint64_t seed)
{
    trace_state = seed;
    trace_seeded = true;
}

/* splitmix64: fast, and every output is a full-period mix of the state. Ids need to be unique
 * and unpredictable enough to not collide between gateways, not cryptographically secret. */
static uint64_t trace__next(void)
{
    if (!trace_seeded) {
        uint64_t s = 0;
        if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s)) {
            /* entropy pool not ready (early boot): time and the state's address still differ
             * between processes and threads */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)&trace_state;
        }
        trace_seed(s);
    }
    uint64_t z = (trace_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void trace__fill(uint8_t *p, size_t n)
{
    while (n > 0) {
        uint64_t r = trace__next();
        size_t k = n < 8 ? n : 8;
        memcpy(p, &r, k);
        p += k;
        n -= k;
    }
}

static bool trace__zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* Lowercase hex only: the spec makes uppercase invalid so that ids compare as strings. */
static int trace__hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int trace__hex(const char *s, uint8_t *out, size_t nbytes)
{
    for (size_t i = 0; i < nbytes; i++) {
        int hi = trace__hexval(s[2 * i]), lo = trace__hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int trace_parse(const char *v, size_t len, struct trace_ctx *out)
{
    if (v == NULL)
        return -1;
    while (len > 0 && (v[0] == ' ' || v[0] == '\t')) {
        v++;
        len--;
    }
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (len < TRACE_HEADER_LEN)
        return -1;
    uint8_t version;
    if (trace__hex(v, &version, 1) == -1 || version == 0xff)
        return -1;
    /* version 00 is exactly 55 chars; a later version may append "-…" fields we ignore */
    if (version == 0 && len != TRACE_HEADER_LEN)
        return -1;
    if (len > TRACE_HEADER_LEN && v[TRACE_HEADER_LEN] != '-')
        return -1;
    if (v[2] != '-' || v[35] != '-' || v[52] != '-')
        return -1;
    struct trace_ctx t;
    if (trace__hex(v + 3, t.trace_id, 16) == -1 || trace__hex(v + 36, t.span_id, 8) == -1 ||
        trace__hex(v + 53, &t.flags, 1) == -1)
        return -1;
    if (trace__zero(t.trace_id, 16) || trace__zero(t.span_id, 8))
        return -1;
    *out = t;
    return 0;
}

void trace_generate(struct trace_ctx *out)
{
    do
        trace__fill(out->trace_id, 16);
    while (trace__zero(out->trace_id, 16));
    do
        trace__fill(out->span_id, 8);
    while (trace__zero(out->span_id, 8));
    out->flags = TRACE_FLAG_SAMPLED;
}

bool trace_continue(const char *v, size_t len, struct trace_ctx *out)
{
    struct trace_ctx in;
    if (v == NULL || trace_parse(v, len, &in) == -1) {
        trace_generate(out);
        return false;
    }
    memcpy(out->trace_id, in.trace_id, 16);
    /* only the sampled bit is defined in level 1; unknown bits are not passed on */
    out->flags = in.flags & TRACE_FLAG_SAMPLED;
    do
        trace__fill(out->span_id, 8);
    while (trace__zero(out->span_id, 8) || memcmp(out->span_id, in.span_id, 8) == 0);
    return true;
}

static char *trace__hexout(char *p, const uint8_t *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        *p++ = digits[b[i] >> 4];
        *p++ = digits[b[i] & 15];
    }
    return p;
}

size_t trace_format(const struct trace_ctx *t, char out[TRACE_HEADER_LEN + 1])
{
    char *p = out;
    memcpy(p, "00-", 3);
    p = trace__hexout(p + 3, t->trace_id, 16);
    *p++ = '-';
    p = trace__hexout(p, t->span_id, 8);
    *p++ = '-';
    p = trace__hexout(p, &t->flags, 1);
    *p = '\0';
    return TRACE_HEADER_LEN;
}

void trace_id_hex(const struct trace_ctx *t, char out[TRACE_ID_HEX + 1])
{
    *trace__hexout(out, t->trace_id, 16) = '\0';
}

/* Appends <s> (<n> bytes) at out[*len] when it fits in <cap> (keeping room for the NUL). */
static bool trace__put(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
    if (*len + n + 1 > cap)
        return false;
    memcpy(out + *len, s, n);
    *len += n;
    return true;
}

/* "<us / 1000>.<us % 1000, 3 digits>": milliseconds with microsecond resolution, what devtools
 * shows. Written by hand: snprintf was most of the cost of the header. */
static bool trace__put_ms(char *out, size_t cap, size_t *len, uint64_t us)
{
    char tmp[32];
    char *p = tmp + sizeof(tmp);
    uint64_t frac = us % 1000, ms = us / 1000;
    for (int i = 0; i < 3; i++, frac /= 10)
        *--p = (char)('0' + frac % 10);
    *--p = '.';
    do
        *--p = (char)('0' + ms % 10);
    while ((ms /= 10) > 0);
    return trace__put(out, cap, len, p, (size_t)(tmp + sizeof(tmp) - p));
}

size_t trace_server_timing(char *out, size_t cap, const struct trace_timing *t)
{
    if (cap == 0)
        return 0;
    size_t n = 0;
    out[0] = '\0';
    static const struct {
        const char *name;
        size_t len;
    } names[] = {{"pool;dur=", 9}, {"upstream;dur=", 13}, {"total;dur=", 10}};
    int64_t d[] = {t->pool_us, t->upstream_us, t->total_us};
    if (t->cache != NULL && (!trace__put(out, cap, &n, "cache;desc=", 11) ||
                             !trace__put(out, cap, &n, t->cache, strlen(t->cache))))
        goto too_long;
    for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
        if (d[i] < 0)
            continue;
        if ((n > 0 && !trace__put(out, cap, &n, ", ", 2)) ||
            !trace__put(out, cap, &n, names[i].name, names[i].len) ||
            !trace__put_ms(out, cap, &n, (uint64_t)d[i]))
            goto too_long;
    }
    out[n] = '\0';
    return n;
too_long:
    out[0] = '\0';
    return 0;
}
