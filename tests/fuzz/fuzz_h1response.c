/* libFuzzer target for what the proxy does with an origin's response: the head parser
 * (h1_parse_response, and h1body_response_head past interim heads) and then, for a chunked body, the chunked decoder with a body limit and the
 * trailer filter. The first byte picks HEAD or not and the decoder's max_size (0 = none, else
 * 1..255 bytes); the rest is the response as it comes off the wire. Beyond crashes it checks:
 * - the head: the same result from every prefix (-2 until complete, the same error otherwise),
 *   a status in 100..599, slices inside the input, no body for HEAD/1xx/204/304;
 * - the chunked body: the same bytes consumed, data, trailer start, error and too_large whether
 *   it arrives whole, 1, 3 or 64 bytes at a time; the data never exceeds max_size;
 * - the trailers: the filtered section is no longer, still ends the message (CRLF), keeps no
 *   framing or Host field, and filtering it again changes nothing.
 * With AG_FUZZ_REPLAY_MAIN, main(argc, argv) replays every file of the directory argv[1], so gcc
 * builds and ctest run the corpus without libFuzzer. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/chunked.h"
#include "http/h1body.h"
#include "http/h1parse.h"

#define MAXH 64

static void check(bool ok)
{
    if (!ok)
        abort();
}

static bool inside(const char *p, size_t n, const uint8_t *buf, size_t len)
{
    return !p || n == 0 || ((const uint8_t *)p >= buf && (const uint8_t *)p + n <= buf + len);
}

struct run {
    long consumed;      /* bytes up to the end of the body, -1 invalid, -2 incomplete */
    bool too_large;
    uint64_t sum;       /* hash of the data */
    size_t total;       /* data bytes */
    size_t trailer_at;  /* offset of the trailer section, when reached */
    bool trailers;
};

/* Decodes <in> in pieces of at most <step> bytes. */
static void chunked_run(const char *in, size_t len, size_t step, uint64_t max_size, struct run *r)
{
    struct h1_chunked c;
    h1_chunked_init(&c);
    c.max_size = max_size;
    memset(r, 0, sizeof(*r));
    size_t pos = 0, avail = 0;
    while (!c.done) {
        if (avail == pos) {
            if (avail == len) {
                r->consumed = -2;
                return;
            }
            avail = avail + step < len ? avail + step : len;
        }
        const char *d;
        size_t dl;
        bool before = c.trailers;
        long n = h1_chunked_step(&c, in + pos, avail - pos, &d, &dl);
        if (n < 0) {
            r->consumed = -1;
            r->too_large = c.too_large;
            return;
        }
        check((size_t)n <= avail - pos);
        if (dl) {
            check(!before); /* no data after the last chunk */
            check(d >= in + pos && d + dl <= in + pos + (size_t)n);
            for (size_t i = 0; i < dl; i++)
                r->sum = r->sum * 31 + (uint8_t)d[i];
            r->total += dl;
        }
        pos += (size_t)n;
        if (!before && c.trailers) {
            r->trailers = true;
            r->trailer_at = pos;
            check(dl == 0 && !c.done); /* the step stops right after the last-chunk line */
        }
        if (max_size)
            check(r->total <= max_size);
        if (n == 0 && !c.done && avail == len) {
            r->consumed = -2;
            return;
        }
    }
    check(r->trailers);
    r->consumed = (long)pos;
}

static bool has_field(const char *p, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i + nl < len; i++) {
        if ((i == 0 || p[i - 1] == '\n') && p[i + nl] == ':') {
            size_t k = 0;
            while (k < nl && (p[i + k] | 0x20) == name[k])
                k++;
            if (k == nl)
                return true;
        }
    }
    return false;
}

static void fuzz_trailers(const char *t, size_t len)
{
    char *a = malloc(len ? len : 1);
    if (!a)
        return;
    memcpy(a, t, len);
    size_t n = h1_chunked_filter_trailers(a, len);
    check(n <= len && n >= 2);
    check(a[n - 2] == '\r' && a[n - 1] == '\n');
    check(!has_field(a, n, "content-length") && !has_field(a, n, "transfer-encoding") &&
          !has_field(a, n, "host") && !has_field(a, n, "trailer"));
    size_t n2 = h1_chunked_filter_trailers(a, n);
    check(n2 == n);
    free(a);
}

static void fuzz_body(const char *in, size_t len, uint64_t max_size)
{
    struct run whole, r;
    chunked_run(in, len, len ? len : 1, max_size, &whole);
    static const size_t steps[] = {1, 3, 64};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        chunked_run(in, len, steps[i], max_size, &r);
        check(r.consumed == whole.consumed && r.too_large == whole.too_large);
        if (r.consumed >= 0)
            check(r.sum == whole.sum && r.total == whole.total &&
                  r.trailer_at == whole.trailer_at);
    }
    if (whole.consumed >= 0)
        fuzz_trailers(in + whole.trailer_at, (size_t)whole.consumed - whole.trailer_at);
    /* without a limit the same bytes are at least as acceptable */
    if (max_size && whole.consumed != -1) {
        chunked_run(in, len, len ? len : 1, 0, &r);
        check(r.consumed == whole.consumed && r.total == whole.total);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool head = data[0] & 1;
    uint64_t max_size = data[0] >> 1; /* 0: none; else 1..127 bytes */
    size--;
    /* a private copy: exactly <size> readable bytes, no NUL after them */
    uint8_t *in = calloc(1, size ? size : 1);
    if (!in)
        return 0;
    if (size)
        memcpy(in, data + 1, size);
    struct h1_header h[MAXH];
    struct h1_response r;
    struct h1_limits lim = {1024, 4096, 40};
    int ret = h1_parse_response((const char *)in, size, &r, h, MAXH, &lim, head);
    enum h1_err err = r.err;
    if (ret > 0) {
        check((size_t)ret <= size && r.nheaders <= 40);
        check(r.status >= 100 && r.status <= 599);
        check(inside(r.reason, r.reason_len, in, size));
        for (size_t i = 0; i < r.nheaders; i++) {
            check(inside(h[i].name, h[i].name_len, in, size) && h[i].name_len > 0);
            check(inside(h[i].value, h[i].value_len, in, size));
        }
        if (head || r.status < 200 || r.status == 204 || r.status == 304)
            check(r.body == H1_BODY_NONE);
        if (r.body == H1_BODY_UNTIL_CLOSE)
            check(!r.keep_alive);
        if (r.body == H1_BODY_CHUNKED)
            fuzz_body((const char *)in + ret, size - (size_t)ret, max_size);
    } else {
        check(ret == -1 || ret == -2);
        if (ret == -1)
            check(err != H1_OK);
    }
    /* prefixes: incomplete until the head is whole; an error in a prefix is the error of all */
    if (size <= 1024) {
        for (size_t i = 0; i < size; i++) {
            struct h1_response rp;
            int pr = h1_parse_response((const char *)in, i, &rp, h, MAXH, &lim, head);
            if (pr == -1) {
                check(ret == -1 && rp.err == err);
                break;
            }
            check(pr == -2 || (pr > 0 && pr == ret));
            if (pr > 0)
                break;
        }
    }
    /* the final head past interim 1xx ones (h1body_response_head, every client's reader): the
     * interim bytes and the head inside the input, a final status (never 100..199 but 101), and
     * every prefix either incomplete with no more interim bytes, or the same answer */
    size_t interim = 0;
    int fin = h1body_response_head((const char *)in, size, &r, h, MAXH, &lim, head, &interim);
    check(interim <= size);
    if (fin > 0) {
        check(interim + (size_t)fin <= size);
        check(r.status == 101 || r.status >= 200);
    } else {
        check(fin == -1 || fin == -2);
    }
    if (size <= 1024) {
        for (size_t i = 0; i < size; i++) {
            struct h1_response rp;
            size_t ip = 0;
            int pr = h1body_response_head((const char *)in, i, &rp, h, MAXH, &lim, head, &ip);
            check(ip <= interim);
            if (pr > 0) {
                check(pr == fin && ip == interim);
                break;
            }
            if (pr == -1) {
                check(fin == -1);
                break;
            }
        }
    }
    /* the whole input as a chunked body too */
    fuzz_body((const char *)in, size, max_size);
    free(in);
    return 0;
}

#ifdef AG_FUZZ_REPLAY_MAIN
#include "replay_main.h"
#endif
