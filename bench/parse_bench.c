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

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
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
