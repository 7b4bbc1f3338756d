/* Body framing (http/h1body.c): Content-Length, chunked, until-close and the no-body responses
 * (HEAD, 1xx, 204, 304), each case fed whole and one byte at a time with the input ending at a
 * guard page (an over-read crashes), as a connection buffer would hold it: bytes not consumed stay
 * pending and the next read appends. Checks the body bytes, the bytes consumed (never past the end
 * of the body: a pipelined next message stays), the state, and what the peer's close means. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/h1body.h"
#include "unit/guard_page.h"

static int guard_teardown(void **state)
{
    (void)state;
    guard_release();
    return 0;
}

/* Feeds <in> <piece> bytes at a time (0: whole) to <b>. Returns the bytes consumed, or -1 when a
 * step failed. The body bytes go to <out> (<out_len>). */
static long feed(struct h1body *b, const char *in, size_t len, size_t piece, char *out,
                 size_t *out_len)
{
    size_t pos = 0, avail = 0, o = 0;
    if (piece == 0)
        piece = len ? len : 1;
    while (avail < len) {
        avail = avail + piece < len ? avail + piece : len; // one more read arrived
        while (pos < avail && b->state == H1BODY_MORE) {
            const char *p = guard_place(in + pos, avail - pos);
            const char *d;
            size_t dl;
            long n = h1body_step(b, p, avail - pos, &d, &dl);
            if (n < 0) {
                assert_int_equal(b->state, H1BODY_ERROR);
                assert_int_equal(dl, 0);
                *out_len = o;
                return -1;
            }
            assert_true((size_t)n <= avail - pos);
            if (dl > 0) {
                assert_true(d >= p && d + dl <= p + n); // a slice of the consumed bytes
                memcpy(out + o, d, dl);
                o += dl;
            }
            pos += (size_t)n;
            if (n == 0)
                break;
        }
    }
    *out_len = o;
    return (long)pos;
}

struct bcase {
    const char *name;
    int status;         /* 0: h1body_init(framing, clen); else init_response with this status */
    bool head;          /* the request was HEAD */
    enum h1_body framing;
    uint64_t clen;
    const char *in;
    long consumed;      /* -1: invalid framing */
    const char *body;
    enum h1body_state state; /* after the input */
    enum h1body_state at_eof; /* after the peer's close */
};

#define CHUNKED_HW "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
static const struct bcase cases[] = {
    {"length whole", 0, false, H1_BODY_LENGTH, 5, "hello", 5, "hello", H1BODY_DONE, H1BODY_DONE},
    {"length then pipelined", 0, false, H1_BODY_LENGTH, 5, "helloHTTP/1.1 200 OK\r\n", 5, "hello",
     H1BODY_DONE, H1BODY_DONE},
    {"length cut short", 0, false, H1_BODY_LENGTH, 10, "hello", 5, "hello", H1BODY_MORE,
     H1BODY_ERROR},
    {"length zero", 0, false, H1_BODY_LENGTH, 0, "next", 0, "", H1BODY_DONE, H1BODY_DONE},
    {"none", 0, false, H1_BODY_NONE, 0, "next", 0, "", H1BODY_DONE, H1BODY_DONE},
    {"chunked", 0, false, H1_BODY_CHUNKED, 0, CHUNKED_HW, sizeof(CHUNKED_HW) - 1, "hello world",
     H1BODY_DONE, H1BODY_DONE},
    {"chunked trailers then pipelined", 0, false, H1_BODY_CHUNKED, 0,
     "3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\nNEXT", 27, "abc", H1BODY_DONE, H1BODY_DONE},
    {"chunked cut short", 0, false, H1_BODY_CHUNKED, 0, "5\r\nhel", -2, "hel", H1BODY_MORE,
     H1BODY_ERROR},
    {"chunked bad size", 0, false, H1_BODY_CHUNKED, 0, "zz\r\nhello\r\n", -1, "", H1BODY_ERROR,
     H1BODY_ERROR},
    {"chunked bad data end", 0, false, H1_BODY_CHUNKED, 0, "3\r\nabcX\r\n0\r\n\r\n", -1, "abc",
     H1BODY_ERROR, H1BODY_ERROR},
    {"until close", 0, false, H1_BODY_UNTIL_CLOSE, 0, "all of it\r\n0\r\n\r\n", 16,
     "all of it\r\n0\r\n\r\n", H1BODY_MORE, H1BODY_DONE},
    {"response 200 length", 200, false, H1_BODY_LENGTH, 3, "abcd", 3, "abc", H1BODY_DONE,
     H1BODY_DONE},
    {"response to HEAD", 200, true, H1_BODY_LENGTH, 100, "HTTP/1.1 200", 0, "", H1BODY_DONE,
     H1BODY_DONE},
    {"response 204", 204, false, H1_BODY_CHUNKED, 0, "0\r\n\r\n", 0, "", H1BODY_DONE,
     H1BODY_DONE},
    {"response 304", 304, false, H1_BODY_LENGTH, 10, "0123456789", 0, "", H1BODY_DONE,
     H1BODY_DONE},
    {"response 103", 103, false, H1_BODY_UNTIL_CLOSE, 0, "HTTP/1.1 200", 0, "", H1BODY_DONE,
     H1BODY_DONE},
    {"response 500 until close", 500, false, H1_BODY_UNTIL_CLOSE, 0, "oops", 4, "oops",
     H1BODY_MORE, H1BODY_DONE},
};

static void body_init(struct h1body *b, const struct bcase *c)
{
    if (c->status == 0) {
        h1body_init(b, c->framing, c->clen);
        return;
    }
    struct h1_response res;
    memset(&res, 0, sizeof(res));
    res.status = c->status;
    res.body = c->framing;
    res.content_length = c->clen;
    h1body_init_response(b, &res, c->head);
}

static void run_case(const struct bcase *c, size_t piece)
{
    struct h1body b;
    body_init(&b, c);
    char out[256];
    size_t out_len = 0;
    size_t len = strlen(c->in);
    long n = feed(&b, c->in, len, piece, out, &out_len);
    print_message("%s, pieces of %zu\n", c->name, piece);
    if (c->consumed == -2) { // incomplete: everything consumed, body still due
        assert_int_equal(n, (long)len);
    } else {
        assert_int_equal(n, c->consumed);
    }
    assert_int_equal(b.state, c->state);
    assert_int_equal(out_len, strlen(c->body));
    assert_memory_equal(out, c->body, out_len);
    assert_int_equal(b.received, out_len);
    assert_int_equal(h1body_eof(&b), c->at_eof);
    assert_int_equal(b.state, c->at_eof);
}

static void test_cases_whole(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i], 0);
}

static void test_cases_byte_by_byte(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_case(&cases[i], 1);
        run_case(&cases[i], 2);
    }
}

/* Once invalid, always invalid: a caller that retries with more bytes gets -1 again. */
static void test_error_is_sticky(void **state)
{
    (void)state;
    struct h1body b;
    h1body_init(&b, H1_BODY_CHUNKED, 0);
    const char *d;
    size_t dl;
    assert_int_equal(h1body_step(&b, "x\r\n", 3, &d, &dl), -1);
    assert_int_equal(h1body_step(&b, "0\r\n\r\n", 5, &d, &dl), -1);
    assert_int_equal(dl, 0);
    assert_int_equal(b.state, H1BODY_ERROR);
}

/* A done body consumes nothing more and a later close changes nothing. */
static void test_done_consumes_nothing(void **state)
{
    (void)state;
    struct h1body b;
    h1body_init(&b, H1_BODY_LENGTH, 2);
    const char *d;
    size_t dl;
    assert_int_equal(h1body_step(&b, "ab", 2, &d, &dl), 2);
    assert_int_equal(b.state, H1BODY_DONE);
    assert_int_equal(h1body_step(&b, "cd", 2, &d, &dl), 0);
    assert_int_equal(dl, 0);
    assert_int_equal(h1body_eof(&b), H1BODY_DONE);
}

/* A length over 32 bits, counted down across many steps (no copy: the same 64 KiB each time),
 * exact at the end: the last step takes only what is due. */
static void test_large_length(void **state)
{
    (void)state;
    struct h1body b;
    uint64_t total = (1ull << 32) + 7;
    h1body_init(&b, H1_BODY_LENGTH, total);
    static char chunk[65536];
    const char *d;
    size_t dl;
    uint64_t left = total;
    while (left > 0) {
        size_t n = left < sizeof(chunk) ? (size_t)left : sizeof(chunk);
        assert_int_equal(h1body_step(&b, chunk, sizeof(chunk), &d, &dl), (long)n);
        assert_int_equal(dl, n);
        left -= n;
        assert_int_equal(b.state, left > 0 ? H1BODY_MORE : H1BODY_DONE);
    }
    assert_true(b.received == total);
}

/* The final response head past interim ones (h1body_response_head), fed whole and as every
 * prefix at a guard page: interim 100/103 heads are skipped and counted, a 101 is final, an
 * incomplete final head after whole interim ones reports them (the caller consumes them), and the
 * length returned is the final head's, after the interim bytes. */
static void test_response_head_past_interim(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int status;      // of the final head, 0: incomplete
        size_t interim;  // bytes of interim heads before it
        int head_len;    // final head's length, -2 incomplete, -1 invalid
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", 200, 0, 38},
        {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 204, 25, 27},
        {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
         "HTTP/1.1 304 Not Modified\r\n\r\n",
         304, 65, 29},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", 101, 0, 48},
        {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200", 0, 25, -2},
        {"HTTP/1.1 100 Continue\r\n\r\nNOT HTTP\r\n\r\n", 0, 25, -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = strlen(cases[i].in);
        for (size_t cut = 1; cut <= len; cut++) {
            const char *in = guard_place(cases[i].in, cut);
            struct h1_header hdrs[8];
            struct h1_response res;
            size_t interim = 99;
            int n = h1body_response_head(in, cut, &res, hdrs, 8, NULL, false, &interim);
            if (cut < len) {
                /* a prefix: never more than what is there, never a head past the cut */
                assert_true(interim <= cut);
                if (n > 0)
                    assert_true(interim + (size_t)n <= cut);
                continue;
            }
            assert_int_equal(n, cases[i].head_len);
            assert_int_equal(interim, cases[i].interim);
            if (cases[i].status != 0)
                assert_int_equal(res.status, cases[i].status);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases_whole),
        cmocka_unit_test(test_cases_byte_by_byte),
        cmocka_unit_test(test_error_is_sticky),
        cmocka_unit_test(test_done_consumes_nothing),
        cmocka_unit_test(test_large_length),
        cmocka_unit_test(test_response_head_past_interim),
    };
    return cmocka_run_group_tests(tests, NULL, guard_teardown);
}
