/* Micro-benchmark of the request head parser: ns per request for a typical ~300-byte API request
 * (not a test; ctest never runs it). Also times the chunked decoder and a one-byte-at-a-time
 * re-parse to show what the stateless design costs when a client dribbles.
 * Build and run (release flags, like the gateway):
 *   gcc -std=c11 -O2 -D_GNU_SOURCE -Isrc bench/parse_bench.c src/http/h1parse.c \
 *       src/http/chunked.c -o /tmp/parse_bench && taskset -c 1 /tmp/parse_bench */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "http/chunked.h"
#include "http/h1parse.h"

static const char req[] =
    "GET /api/v1/users/12345/orders?limit=20&offset=40&sort=desc HTTP/1.1\r\n"
    "Host: api.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) apigate-bench/1.0\r\n"
    "Accept: application/json\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.abc\r\n"
    "Connection: keep-alive\r\n"
    "\r\n";

/* Thread CPU time, not wall time: the 2-vCPU box is shared, and time spent preempted is not
 * parser time. */
/* A heavier browser-style head: ~1.2 KB, 16 headers, long cookie. */
static const char req_big[] =
    "POST /api/v2/carts/8d7f/items?expand=price,stock&locale=en-US HTTP/1.1\r\n"
    "Host: shop.example.com\r\n"
    "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36\r\n"
    "Accept: application/json, text/plain, */*\r\n"
    "Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 187\r\n"
    "Origin: https://shop.example.com\r\n"
    "Referer: https://shop.example.com/products/12345?ref=homepage&campaign=winter\r\n"
    "Cookie: session=3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a; _ga=GA1.2.123456789.1700000000; "
    "_gid=GA1.2.987654321.1700000000; prefs=%7B%22theme%22%3A%22dark%22%2C%22lang%22%3A%22en%22%7D; "
    "cart=8d7f; ab_test=variant_b; consent=analytics%3Dtrue%26ads%3Dfalse\r\n"
    "X-Request-Id: 7c9e6679-7425-40de-944b-e07fc1f90ae7\r\n"
    "X-Forwarded-For: 203.0.113.7, 198.51.100.23\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Sec-Fetch-Mode: cors\r\n"
    "Connection: keep-alive\r\n"
    "\r\n";

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(void)
{
    struct h1_header h[64];
    struct h1_request r;
    size_t len = sizeof(req) - 1;
    volatile uint64_t sink = 0;
    const int iters = 2000000;

    for (int i = 0; i < 100000; i++) /* warm-up */
        sink += (uint64_t)h1_parse_request(req, len, &r, h, 64, NULL);
    double best = 1e30;
    for (int round = 0; round < 5; round++) {
        double t0 = now_ns();
        for (int i = 0; i < iters; i++) {
            int n = h1_parse_request(req, len, &r, h, 64, NULL);
            sink += (uint64_t)n + r.nheaders;
        }
        double ns = (now_ns() - t0) / iters;
        if (ns < best)
            best = ns;
    }
    if (h1_parse_request(req, len, &r, h, 64, NULL) != (int)len) {
        fprintf(stderr, "benchmark request does not parse\n");
        return 1;
    }
    printf("request head: %zu bytes, %zu headers: %.1f ns/request (best of 5 x %d), "
           "%.2f M requests/s, %.2f GB/s\n",
           len, r.nheaders, best, iters, 1e3 / best, (double)len / best);

    size_t blen = sizeof(req_big) - 1;
    best = 1e30;
    for (int round = 0; round < 5; round++) {
        double t0 = now_ns();
        for (int i = 0; i < iters / 4; i++)
            sink += (uint64_t)h1_parse_request(req_big, blen, &r, h, 64, NULL);
        double ns = (now_ns() - t0) / (iters / 4);
        if (ns < best)
            best = ns;
    }
    if (h1_parse_request(req_big, blen, &r, h, 64, NULL) != (int)blen) {
        fprintf(stderr, "big benchmark request does not parse\n");
        return 1;
    }
    printf("browser-style head: %zu bytes, %zu headers: %.1f ns/request, %.2f GB/s\n", blen,
           r.nheaders, best, (double)blen / best);

    /* the worst case of re-parsing: every byte arrives alone */
    double t0 = now_ns();
    const int dribble = 2000;
    for (int i = 0; i < dribble; i++)
        for (size_t k = 1; k <= len; k++)
            sink += (uint64_t)h1_parse_request(req, k, &r, h, 64, NULL);
    printf("one byte per read (%zu parses per request): %.0f ns/request\n", len,
           (now_ns() - t0) / dribble);

    /* chunked: 16 KiB body in 1 KiB chunks */
    static char body[20000];
    size_t bl = 0;
    for (int c = 0; c < 16; c++) {
        bl += (size_t)sprintf(body + bl, "400\r\n");
        memset(body + bl, 'x', 1024);
        bl += 1024;
        memcpy(body + bl, "\r\n", 2);
        bl += 2;
    }
    memcpy(body + bl, "0\r\n\r\n", 5);
    bl += 5;
    static char out[20000];
    size_t ol;
    t0 = now_ns();
    const int citers = 200000;
    for (int i = 0; i < citers; i++)
        sink += (uint64_t)h1_chunked_decode_all(body, bl, out, sizeof(out), &ol);
    double cns = (now_ns() - t0) / citers;
    printf("chunked 16 KiB body (16 chunks, copied out): %.0f ns, %.2f GB/s\n", cns,
           (double)bl / cns);
    return sink == 42; /* keep the work */
}
