/* libFuzzer target for the body framing reader (http/h1body.c). The first byte picks the framing
 * (none, length, chunked, until close), whether the response status is one without a body and
 * whether the request was HEAD; the next two give a Content-Length; the rest is the body as it
 * comes off the wire. Beyond crashes and over-reads it checks the invariants a client relies on:
 * the reader gives the same bytes consumed, body and state however the input is split (whole,
 * 1, 3 and 64 bytes per read), every body slice lies inside the consumed bytes, a length body
 * never takes more than its length, and received counts the bytes yielded.
 * With AG_FUZZ_REPLAY_MAIN, main(argc, argv) replays every file of the directory argv[1], so gcc
 * builds and ctest run the corpus without libFuzzer. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1body.h"

static void check(bool ok)
{
    if (!ok)
        abort();
}

struct run {
    long consumed; /* -1: invalid framing */
    enum h1body_state state, at_eof;
    uint64_t sum; /* a hash of the body bytes */
    uint64_t total;
};

static void start(struct h1body *b, uint8_t mode, uint64_t clen)
{
    static const enum h1_body framings[4] = {H1_BODY_NONE, H1_BODY_LENGTH, H1_BODY_CHUNKED,
                                             H1_BODY_UNTIL_CLOSE};
    if (mode & 0x80) {
        struct h1_response res;
        memset(&res, 0, sizeof(res));
        static const int statuses[4] = {200, 204, 304, 103};
        res.status = statuses[(mode >> 2) & 3];
        res.body = framings[mode & 3];
        res.content_length = clen;
        h1body_init_response(b, &res, (mode & 0x40) != 0);
    } else {
        h1body_init(b, framings[mode & 3], clen);
    }
}

/* Feeds <in> <piece> bytes per read, as a connection buffer holds them (unconsumed bytes stay
 * pending, the next read appends), each call seeing exactly the pending bytes in a heap copy. */
static struct run feed(const uint8_t *in, size_t len, size_t piece, uint8_t mode, uint64_t clen)
{
    struct h1body b;
    start(&b, mode, clen);
    struct run r = {0, 0, 0, 0, 0};
    size_t pos = 0, avail = 0;
    do {
        avail = avail + piece < len ? avail + piece : len;
        while (pos < avail && b.state == H1BODY_MORE) {
            size_t n = avail - pos;
            char *p = malloc(n);
            if (p == NULL)
                abort();
            memcpy(p, in + pos, n);
            const char *d;
            size_t dl;
            long k = h1body_step(&b, p, n, &d, &dl);
            if (k < 0) {
                check(b.state == H1BODY_ERROR && dl == 0);
                free(p);
                r.consumed = -1;
                r.state = b.state;
                r.at_eof = h1body_eof(&b);
                return r;
            }
            check((size_t)k <= n);
            if (dl > 0) {
                check(d >= p && d + dl <= p + k);
                for (size_t i = 0; i < dl; i++)
                    r.sum = r.sum * 31 + (uint8_t)d[i];
                r.total += dl;
            }
            free(p);
            pos += (size_t)k;
            if (k == 0)
                break;
        }
    } while (avail < len);
    check(b.received == r.total);
    if (b.framing == H1_BODY_LENGTH)
        check(r.total <= clen && (b.state != H1BODY_DONE || r.total == clen));
    r.consumed = (long)pos;
    r.state = b.state;
    r.at_eof = h1body_eof(&b);
    check(r.at_eof != H1BODY_MORE);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint8_t mode = data[0];
    uint64_t clen = (uint64_t)data[1] << 8 | data[2];
    const uint8_t *in = data + 3;
    size_t len = size - 3;
    struct run whole = feed(in, len, len ? len : 1, mode, clen);
    static const size_t pieces[] = {1, 3, 64};
    for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        struct run r = feed(in, len, pieces[i], mode, clen);
        check(r.consumed == whole.consumed && r.state == whole.state && r.at_eof == whole.at_eof);
        if (r.consumed >= 0)
            check(r.sum == whole.sum && r.total == whole.total);
    }
    return 0;
}

#ifdef AG_FUZZ_REPLAY_MAIN
#include "replay_main.h"
#endif
