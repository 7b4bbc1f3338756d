/* Chunked decoder: valid bodies decoded whole, split in two at every byte position and fed one byte
 * at a time must give the same data and length; invalid framing is refused in every split. Inputs
 * end at a PROT_NONE page so an over-read crashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <unistd.h>

#include "core/buf.h"
#include "http/chunked.h"
#include "http/h1write.h"
#include "unit/guard_page.h"

/* Feeds <in> in pieces: cut points are given by <cuts> (ascending offsets) and each piece ends at
 * the guard page. Returns bytes consumed when done, -1 when invalid, -2 when incomplete. */
static long feed(const char *in, size_t len, const size_t *cuts, size_t ncuts, char *out,
                 size_t *out_len)
{
    struct h1_chunked c;
    h1_chunked_init(&c);
    size_t pos = 0, o = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        /* the bytes of this piece the decoder has not consumed stay pending, as in a conn buffer */
        while (pos < end) {
            const char *p = guard_place(in + pos, end - pos);
            const char *d;
            size_t dl;
            long n = h1_chunked_step(&c, p, end - pos, &d, &dl);
            if (n < 0)
                return -1;
            if (dl) {
                assert_true(d >= p && d + dl <= p + n);
                memcpy(out + o, d, dl);
                o += dl;
            }
            pos += (size_t)n;
            if (c.done) {
                *out_len = o;
                return (long)pos;
            }
            if (n == 0)
                break;
        }
    }
    *out_len = o;
    return -2;
}

struct good {
    const char *in;
    const char *data; /* decoded */
    size_t consumed;  /* 0: whole input */
};

static const struct good goods[] = {
    {"0\r\n\r\n", "", 0},
    {"5\r\nhello\r\n0\r\n\r\n", "hello", 0},
    {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", 0},
    {"A\r\n0123456789\r\n0\r\n\r\n", "0123456789", 0},
    {"a\r\n0123456789\r\n0\r\n\r\n", "0123456789", 0},
    {"000000000000000A\r\n0123456789\r\n0\r\n\r\n", "0123456789", 0},
    {"5;name=value\r\nhello\r\n0\r\n\r\n", "hello", 0},
    {"5 ; a=1;b=\"x;y\\\"z\"\r\nhello\r\n0;last\r\n\r\n", "hello", 0},
    {"5\t\r\nhello\r\n0\r\n\r\n", "hello", 0},
    {"5\r\nhello\r\n0\r\nExpires: never\r\nX-Sum: abc\r\n\r\n", "hello", 0},
    {"3\r\n\r\n\r\r\n0\r\n\r\n", "\r\n\r", 0},
    /* pipelined bytes after the end are left alone */
    {"1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "x", 11},
};

static void check_good(const struct good *g)
{
    size_t len = strlen(g->in);
    size_t want = g->consumed ? g->consumed : len;
    char out[256];
    size_t ol;
    /* whole */
    long n = feed(g->in, len, NULL, 0, out, &ol);
    if (n != (long)want || ol != strlen(g->data) || memcmp(out, g->data, ol) != 0)
        fail_msg("whole %s: %ld", g->in, n);
    /* two pieces, cut at every position */
    for (size_t cut = 0; cut <= len; cut++) {
        n = feed(g->in, len, &cut, 1, out, &ol);
        if (n != (long)want || ol != strlen(g->data) || memcmp(out, g->data, ol) != 0)
            fail_msg("cut %zu of %s: %ld", cut, g->in, n);
    }
    /* one byte at a time */
    size_t cuts[256];
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    n = feed(g->in, len, cuts, len, out, &ol);
    if (n != (long)want || ol != strlen(g->data) || memcmp(out, g->data, ol) != 0)
        fail_msg("bytewise %s: %ld", g->in, n);
    /* every proper prefix is incomplete */
    for (size_t i = 0; i < want; i++) {
        n = feed(g->in, i, NULL, 0, out, &ol);
        if (n != -2)
            fail_msg("prefix %zu of %s: %ld", i, g->in, n);
    }
    /* convenience API */
    size_t dl;
    assert_int_equal(h1_chunked_decode_all(g->in, len, out, sizeof(out), &dl), (long)want);
    assert_int_equal(dl, strlen(g->data));
}

static void test_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++)
        check_good(&goods[i]);
}

static const char *const bads[] = {
    "",                               /* (skipped: incomplete, not invalid; NUL: test_nul) */
    "-1\r\n",                         /* signed */
    "0x5\r\nhello\r\n0\r\n\r\n",      /* 0x prefix */
    " 5\r\nhello\r\n0\r\n\r\n",       /* leading space */
    "g\r\n",                          /* not hex */
    "\r\n",                           /* empty size */
    "5\nhello\r\n0\r\n\r\n",          /* LF-only size line */
    "5\rhello\r\n0\r\n\r\n",          /* bare CR */
    "5\r\nhello\n0\r\n\r\n",          /* LF-only after data */
    "5\r\nhelloX\r\n0\r\n\r\n",       /* data longer than the size */
    "5\r\nhello\r\r\n",               /* CR CR */
    "5 x\r\nhello\r\n0\r\n\r\n",      /* junk after size */
    "5;a\x01\r\nhello\r\n0\r\n\r\n",  /* CTL in extension */
    "5;a=\"x\ny\"\r\n",               /* LF in quoted extension */
    "5;a\nhello\r\n",                 /* LF ends extension */
    "10000000000000000\r\n",          /* 2^64: 17 digits */
    "FFFFFFFFFFFFFFFF\r\n",           /* 16 digits but over 2^63 */
    "8000000000000001\r\n",           /* just over 2^63 */
    "00000000000000005\r\n",          /* 17 digits with leading zeros */
    "0\r\nX : y\r\n\r\n",             /* space before colon in trailer */
    "0\r\n y\r\n\r\n",                /* obs-fold in trailer */
    "0\r\n: y\r\n\r\n",               /* empty trailer name */
    "0\r\nX: a\x7f\r\n\r\n",          /* DEL in trailer value */
    "0\r\nX: y\n\r\n",                /* LF-only trailer line */
    "0\r\nX\r\n\r\n",                 /* trailer without colon */
    "0\r\n\n",                        /* LF-only final line */
    "0\r\n\r\r",                      /* CR CR at the end */
};

static void test_invalid(void **state)
{
    (void)state;
    char out[256];
    size_t ol;
    for (size_t i = 1; i < sizeof(bads) / sizeof(bads[0]); i++) {
        const char *in = bads[i];
        size_t len = strlen(in);
        long n = feed(in, len, NULL, 0, out, &ol);
        if (n != -1)
            fail_msg("bad %zu whole: %ld", i, n);
        for (size_t cut = 0; cut <= len; cut++) {
            n = feed(in, len, &cut, 1, out, &ol);
            if (n != -1)
                fail_msg("bad %zu cut %zu: %ld", i, cut, n);
        }
        size_t dl;
        assert_int_equal(h1_chunked_decode_all(in, len, out, sizeof(out), &dl), -1);
    }
}

static void test_nul(void **state)
{
    (void)state;
    static const char in[] = "0\r\nX: a\0b\r\n\r\n";
    char out[16];
    size_t ol;
    assert_int_equal(feed(in, sizeof(in) - 1, NULL, 0, out, &ol), -1);
    static const char in2[] = "5;\0\r\nhello\r\n0\r\n\r\n";
    assert_int_equal(feed(in2, sizeof(in2) - 1, NULL, 0, out, &ol), -1);
    /* NUL inside chunk data is just data */
    static const char in3[] = "3\r\na\0b\r\n0\r\n\r\n";
    assert_int_equal(feed(in3, sizeof(in3) - 1, NULL, 0, out, &ol), (long)sizeof(in3) - 1);
    assert_int_equal(ol, 3);
    assert_memory_equal(out, "a\0b", 3);
}

static void test_limits(void **state)
{
    (void)state;
    char out[16];
    size_t ol;
    /* 2^53 is the largest size accepted (its data is then simply incomplete); 2^63 is refused at
     * once even without a body limit */
    assert_int_equal(feed("20000000000000\r\n", 16, NULL, 0, out, &ol), -2);
    assert_int_equal(feed("20000000000001\r\n", 16, NULL, 0, out, &ol), -1);
    assert_int_equal(feed("8000000000000000\r\n", 18, NULL, 0, out, &ol), -1);
    assert_int_equal(feed("7fffffffffffffff\r\n", 18, NULL, 0, out, &ol), -1);
    /* extension line bounded */
    size_t n = 5000;
    char *s = malloc(n + 32);
    memcpy(s, "1;x=", 4);
    memset(s + 4, 'a', n);
    memcpy(s + 4 + n, "\r\nx\r\n0\r\n\r\n", 11);
    assert_int_equal(feed(s, n + 14, NULL, 0, out, &ol), -1);
    /* a 4000-byte extension line is fine */
    memcpy(s + 4 + 3990, "\r\nx\r\n0\r\n\r\n", 11);
    assert_int_equal(feed(s, 3990 + 14, NULL, 0, out, &ol), 3990 + 14);
    free(s);
    /* trailers bounded */
    n = 20000;
    s = malloc(n + 32);
    memcpy(s, "0\r\nX: ", 6);
    memset(s + 6, 'v', n);
    memcpy(s + 6 + n, "\r\n\r\n", 5);
    assert_int_equal(feed(s, n + 10, NULL, 0, out, &ol), -1);
    free(s);
    /* a too small output buffer in decode_all is an error, not an overflow */
    assert_int_equal(h1_chunked_decode_all("5\r\nhello\r\n0\r\n\r\n", 15, out, 4, &ol), -1);
    assert_int_equal(h1_chunked_decode_all("5\r\nhel", 6, out, 16, &ol), -2);
}

/* max_size: a size that takes the data past the body limit is refused once its digits end, before
 * its CRLF or data; sizes up to the limit pass, across several chunks. */
static void test_max_size(void **state)
{
    (void)state;
    struct h1_chunked c;
    const char *d;
    size_t dl;
    h1_chunked_init(&c);
    c.max_size = 10;
    assert_int_equal(h1_chunked_step(&c, "8000000000000000\r\n", 18, &d, &dl), -1);
    assert_false(c.too_large); /* over the 2^53 ceiling: invalid (400), not just too large */
    h1_chunked_init(&c);
    c.max_size = 10;
    assert_int_equal(h1_chunked_step(&c, "b", 1, &d, &dl), 1); /* consumed: the size may go on */
    assert_int_equal(h1_chunked_step(&c, ";", 1, &d, &dl), -1); /* 11 > 10, before its CRLF */
    assert_true(c.too_large);
    h1_chunked_init(&c);
    c.max_size = 10;
    const char *ok = "6\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\n";
    size_t pos = 0, total = 0;
    while (!c.done) {
        long n = h1_chunked_step(&c, ok + pos, strlen(ok) - pos, &d, &dl);
        assert_true(n > 0);
        pos += (size_t)n;
        total += dl;
    }
    assert_int_equal(total, 10);
    assert_false(c.too_large);
    h1_chunked_init(&c);
    c.max_size = 10;
    const char *over = "6\r\nabcdef\r\n5\r\n";
    long n = h1_chunked_step(&c, over, strlen(over), &d, &dl);
    assert_int_equal(n, 9); /* the size line and the data of the first chunk */
    assert_int_equal(h1_chunked_step(&c, over + n, strlen(over) - (size_t)n, &d, &dl), -1);
    assert_true(c.too_large); /* 6 + 5 > 10 */
    /* a bad digit is invalid framing, not too large */
    h1_chunked_init(&c);
    c.max_size = 10;
    assert_int_equal(h1_chunked_step(&c, "z\r\n", 3, &d, &dl), -1);
    assert_false(c.too_large);
}

/* Framing, routing, auth and caching fields are dropped from trailers, others kept in order. */
static void test_filter_trailers(void **state)
{
    (void)state;
    char t[] = "Content-Length: 5\r\nX-Checksum: abc\r\ntransfer-encoding: chunked\r\nHost: evil\r\n"
               "Set-Cookie: a=b\r\nServer-Timing: db;dur=5\r\n\r\n";
    size_t n = h1_chunked_filter_trailers(t, strlen(t));
    assert_int_equal(n, strlen("X-Checksum: abc\r\nServer-Timing: db;dur=5\r\n\r\n"));
    assert_memory_equal(t, "X-Checksum: abc\r\nServer-Timing: db;dur=5\r\n\r\n", n);
    char e[] = "\r\n";
    assert_int_equal(h1_chunked_filter_trailers(e, 2), 2);
}

/* Steps return at most one run of data, and return 0 only for no input or after the end. */
static void test_step_contract(void **state)
{
    (void)state;
    struct h1_chunked c;
    h1_chunked_init(&c);
    const char *in = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nNEXT";
    const char *d;
    size_t dl;
    long n = h1_chunked_step(&c, in, strlen(in), &d, &dl);
    assert_int_equal(n, 6);
    assert_int_equal(dl, 3);
    assert_memory_equal(d, "abc", 3);
    n = h1_chunked_step(&c, in + 6, strlen(in) - 6, &d, &dl);
    assert_int_equal(n, 7);
    assert_memory_equal(d, "de", 2);
    n = h1_chunked_step(&c, in + 13, strlen(in) - 13, &d, &dl);
    assert_int_equal(n, 5); /* up to the end of the last-chunk line: the trailers start here */
    assert_int_equal(dl, 0);
    assert_true(c.trailers);
    assert_false(c.done);
    n = h1_chunked_step(&c, in + 18, strlen(in) - 18, &d, &dl);
    assert_int_equal(n, 2);
    assert_true(c.done);
    assert_int_equal(h1_chunked_step(&c, in + 20, 4, &d, &dl), 0);
    assert_int_equal(h1_chunked_step(&c, in, 0, &d, &dl), 0);
}

/* h1_write_chunk output decodes back to the same bytes. */
static void test_roundtrip_writer(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    char data[3000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i * 7);
    h1_write_chunk(&b, data, 1);
    h1_write_chunk(&b, data + 1, 255);
    h1_write_chunk(&b, data + 256, sizeof(data) - 256);
    h1_write_chunk(&b, NULL, 0);
    char out[4000];
    size_t ol;
    assert_int_equal(h1_chunked_decode_all(buf_head(&b), buf_pending(&b), out, sizeof(out), &ol),
                     (long)buf_pending(&b));
    assert_int_equal(ol, sizeof(data));
    assert_memory_equal(out, data, sizeof(data));
    buf_deinit(&b);
}

static int teardown_all(void **state)
{
    (void)state;
    guard_release();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),         cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_nul),           cmocka_unit_test(test_limits),
        cmocka_unit_test(test_step_contract), cmocka_unit_test(test_roundtrip_writer),
        cmocka_unit_test(test_max_size),      cmocka_unit_test(test_filter_trailers),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_all);
}
