/* libFuzzer target for the HTTP/1 codec: the input is parsed as a request head, as a response
 * head (GET and HEAD) and, after a complete request head with a chunked body, its body is run
 * through the chunked decoder in two different splits. Beyond crashes it checks invariants that
 * would mean a desync: whole and incremental parses agree, slices stay inside the input, the
 * chunked decoder gives the same result however the bytes arrive. The small value parsers
 * (Cache-Control, HTTP-date, URL and cache-key normalization) get the same bytes.
 * With AG_FUZZ_REPLAY_MAIN, main(argc, argv) replays every file of the directory argv[1], so gcc
 * builds and ctest run the corpus without libFuzzer. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "http/cachectl.h"
#include "http/chunked.h"
#include "http/date.h"
#include "http/h1parse.h"
#include "http/url.h"

#define MAXH 32

static void check(bool ok)
{
    if (!ok)
        abort();
}

static bool inside(const char *p, size_t n, const uint8_t *buf, size_t len)
{
    return !p || n == 0 || ((const uint8_t *)p >= buf && (const uint8_t *)p + n <= buf + len);
}

/* Decodes <in> giving the decoder pieces of at most <step> bytes; returns consumed, -1, -2. */
static long chunked_run(const char *in, size_t len, size_t step, uint64_t *sum, size_t *total)
{
    struct h1_chunked c;
    h1_chunked_init(&c);
    size_t pos = 0;
    *sum = 0;
    *total = 0;
    size_t avail = 0;
    while (!c.done) {
        if (avail == pos) {
            if (avail == len)
                return -2;
            avail = avail + step < len ? avail + step : len;
        }
        const char *d;
        size_t dl;
        long n = h1_chunked_step(&c, in + pos, avail - pos, &d, &dl);
        if (n < 0)
            return -1;
        check((size_t)n <= avail - pos);
        if (dl) {
            check(d >= in + pos && d + dl <= in + pos + (size_t)n);
            for (size_t i = 0; i < dl; i++)
                *sum = *sum * 31 + (uint8_t)d[i];
            *total += dl;
        }
        pos += (size_t)n;
        if (n == 0 && !c.done && avail == len)
            return -2;
    }
    return (long)pos;
}

static void fuzz_request(const uint8_t *data, size_t size)
{
    struct h1_header h[MAXH];
    struct h1_request r;
    struct h1_limits lim = {512, 2048, 24};
    int ret = h1_parse_request((const char *)data, size, &r, h, MAXH, &lim);
    enum h1_err err = r.err;
    if (ret > 0) {
        check((size_t)ret <= size && (size_t)ret <= lim.max_head);
        check(r.nheaders <= 24);
        check(inside(r.method, r.method_len, data, size));
        check(inside(r.target, r.target_len, data, size));
        check(inside(r.query, r.query_len, data, size));
        check(r.minor_version == 0 || r.minor_version == 1);
        check(!(r.body == H1_BODY_CHUNKED && r.minor_version == 0));
        for (size_t i = 0; i < r.nheaders; i++) {
            check(inside(h[i].name, h[i].name_len, data, size) && h[i].name_len > 0);
            check(inside(h[i].value, h[i].value_len, data, size));
        }
        /* the same head parsed from exactly its own bytes gives the same answer */
        struct h1_request r2;
        struct h1_header h2[MAXH];
        check(h1_parse_request((const char *)data, (size_t)ret, &r2, h2, MAXH, &lim) == ret);
        check(r2.body == r.body && r2.content_length == r.content_length &&
              r2.keep_alive == r.keep_alive);
        if (r.body == H1_BODY_CHUNKED) {
            uint64_t s1, s2;
            size_t t1, t2;
            const char *body = (const char *)data + ret;
            size_t blen = size - (size_t)ret;
            long a = chunked_run(body, blen, blen ? blen : 1, &s1, &t1);
            long b = chunked_run(body, blen, 1, &s2, &t2);
            long c = chunked_run(body, blen, 7, &s2, &t2);
            check(a == b && b == c);
            if (a >= 0)
                check(s1 == s2 && t1 == t2);
        }
    } else {
        check(ret == -1 || ret == -2);
        if (ret == -1)
            check(err != H1_OK);
    }
    /* every shorter prefix is -2 when the whole is complete (a parse never "completes early"),
     * and an error found in a prefix is the error of the whole */
    if (size <= 512) {
        for (size_t i = 0; i < size; i++) {
            struct h1_request rp;
            int pr = h1_parse_request((const char *)data, i, &rp, h, MAXH, &lim);
            if (pr == -1) {
                check(ret == -1 && rp.err == err);
                break;
            }
            check(pr == -2 || (pr > 0 && ret == pr));
            if (pr > 0)
                break;
        }
    }
}

static void fuzz_response(const uint8_t *data, size_t size, bool head)
{
    struct h1_header h[MAXH];
    struct h1_response r;
    int ret = h1_parse_response((const char *)data, size, &r, h, MAXH, NULL, head);
    if (ret > 0) {
        check((size_t)ret <= size);
        check(r.status >= 100 && r.status <= 999);
        check(inside(r.reason, r.reason_len, data, size));
        if (head || r.status < 200 || r.status == 204 || r.status == 304)
            check(r.body == H1_BODY_NONE);
        if (r.body == H1_BODY_UNTIL_CLOSE)
            check(!r.keep_alive);
    } else {
        check(ret == -1 || ret == -2);
    }
}

/* Header-value parsers: no crash, and their outputs keep their documented invariants. */
static void fuzz_values(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct cache_control cc;
    cachectl_init(&cc);
    cachectl_parse(&cc, s, size);
    check(cc.max_age == CACHECTL_ABSENT || (cc.max_age >= 0 && cc.max_age <= INT64_C(2147483648)));
    check(!(cc.max_age_invalid && cc.max_age != CACHECTL_ABSENT));

    int64_t t;
    if (http_date_parse_at(s, size, INT64_C(1795000000), &t) == 0 && t >= 0 &&
        t < INT64_C(253402300800)) {
        char out[HTTP_DATE_LEN + 1];
        int64_t t2;
        http_date_format(t, out);
        check(http_date_parse_at(out, HTTP_DATE_LEN, 0, &t2) == 0 && t2 == t);
    }

    struct buf b = BUF_INIT;
    if (url_normalize_path(s, size, &b) == 0) {
        check(buf_pending(&b) >= 1 && buf_pending(&b) <= (size ? size : 1));
        /* normalizing twice changes nothing */
        struct buf b2 = BUF_INIT;
        check(url_normalize_path(buf_head(&b), buf_pending(&b), &b2) == 0);
        check(buf_pending(&b2) == buf_pending(&b) &&
              memcmp(buf_head(&b2), buf_head(&b), buf_pending(&b)) == 0);
        buf_deinit(&b2);
    }
    /* the path the gateway routes and forwards by: never longer, rooted, a fixed point of itself
     * and in url_normalize_path() normal form (the cache key), or refused with a reason */
    char *o = malloc(size ? size : 1), *o2 = malloc(size ? size : 1);
    for (unsigned fl = 0; o != NULL && o2 != NULL && fl < 4; fl++) {
        size_t on = 0, on2 = 0;
        const char *why = NULL;
        if (url_path_canon(s, size, fl, o, &on, &why) != 0) {
            check(why != NULL);
            continue;
        }
        check(why == NULL && on >= 1 && on <= (size ? size : 1) && o[0] == '/');
        check(url_path_canon(o, on, fl, o2, &on2, &why) == 0 && on2 == on &&
              memcmp(o, o2, on) == 0);
        buf_reset(&b);
        check(url_normalize_path(o, on, &b) == 0 && buf_pending(&b) == on &&
              memcmp(buf_head(&b), o, on) == 0);
    }
    free(o);
    free(o2);
    buf_reset(&b);
    static const char *const ignore[] = {"utm_*", "x", NULL};
    url_normalize_query(s, size, ignore, &b);
    check(buf_pending(&b) <= size);
    buf_deinit(&b);

    char *z = malloc(size + 1);
    if (z) {
        memcpy(z, data, size);
        z[size] = '\0';
        struct url u;
        char err[128];
        if (url_parse(z, &u, err, sizeof(err)) == 0)
            check(u.port > 0 && u.port < 65536 && u.path[0] == '/');
        free(z);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy, so the parser sees exactly <size> readable bytes (ASan catches over-reads)
     * and never a NUL terminator it could rely on. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    if (size)
        memcpy(copy, data, size);
    fuzz_request(copy, size);
    fuzz_response(copy, size, false);
    fuzz_response(copy, size, true);
    fuzz_values(copy, size);
    /* the whole input as a chunked body, too */
    uint64_t s1, s2;
    size_t t1, t2;
    long a = chunked_run((const char *)copy, size, size ? size : 1, &s1, &t1);
    long b = chunked_run((const char *)copy, size, 3, &s2, &t2);
    check(a == b);
    if (a >= 0)
        check(s1 == s2 && t1 == t2);
    free(copy);
    return 0;
}

#ifdef AG_FUZZ_REPLAY_MAIN
#include "replay_main.h"
#endif
