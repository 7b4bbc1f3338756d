/* Content codings: Accept-Encoding negotiation as a table, round trips through each encoder and
 * decoder (in pieces, as the filter streams), the decoder's output bound (a bomb) and corrupt or
 * truncated input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/codec.h"
#include "core/buf.h"

static const enum codec_enc all[] = {CODEC_BR, CODEC_ZSTD, CODEC_GZIP};

static void test_negotiate_table(void **state)
{
    (void)state;
    static const struct {
        const char *ae; // NULL: no header
        enum codec_enc want;
    } t[] = {
        {NULL, CODEC_IDENTITY},
        {"", CODEC_IDENTITY},
        {"gzip", CODEC_GZIP},
        {"GZIP", CODEC_GZIP},
        {"x-gzip", CODEC_GZIP},
        {"gzip, deflate, br", CODEC_BR}, // server order breaks the tie
        {"gzip, deflate, br, zstd", CODEC_BR},
        {"zstd, gzip", CODEC_ZSTD},
        {"br;q=0.5, gzip;q=0.8", CODEC_GZIP}, // highest q wins
        {"br;q=0.8, gzip;q=0.8", CODEC_BR},
        {"gzip;q=0", CODEC_IDENTITY}, // q=0 refuses
        {"gzip;q=0.000", CODEC_IDENTITY},
        {"gzip; q=0 , br", CODEC_BR},
        {"*", CODEC_BR}, // * accepts every coding
        {"*;q=0", CODEC_IDENTITY},
        {"*, br;q=0", CODEC_ZSTD}, // named refusal beats *
        {"*;q=0.1, gzip;q=0.5", CODEC_GZIP},
        {"identity", CODEC_IDENTITY},
        {"identity;q=0", CODEC_IDENTITY},      // refused identity, nothing else: identity
        {"deflate, compress", CODEC_IDENTITY}, // none offered
        {"gzip;q=2", CODEC_IDENTITY},          // malformed q counts as a refusal
        {"gzip;q=abc", CODEC_IDENTITY},
        {"gzip;q=1.000", CODEC_GZIP},
        {"gzip;q=0.001", CODEC_GZIP},
        {"  gzip  ;  q=0.5  ", CODEC_GZIP},
        {",,gzip,,", CODEC_GZIP},
        {"gzip;level=1;q=0", CODEC_IDENTITY},
        {"gzipx, brr", CODEC_IDENTITY},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        const char *ae = t[i].ae;
        enum codec_enc got = codec_negotiate(ae ? ae : "", ae ? strlen(ae) : 0, ae != NULL, all, 3);
        if (got != t[i].want)
            fail_msg("Accept-Encoding '%s': got %s, want %s", ae ? ae : "(none)", codec_name(got),
                     codec_name(t[i].want));
    }
    /* only what the route offers */
    enum codec_enc gz_only[] = {CODEC_GZIP};
    assert_int_equal(codec_negotiate("br, zstd", 8, true, gz_only, 1), CODEC_IDENTITY);
    assert_int_equal(codec_negotiate("br, gzip", 8, true, gz_only, 1), CODEC_GZIP);
}

static void fill_json(struct buf *b, size_t n)
{
    unsigned seed = 7;
    while (buf_pending(b) < n) {
        seed = seed * 1103515245u + 12345u;
        buf_printf(b, "{\"id\":%u,\"name\":\"item-%u\",\"ok\":true},", seed % 1000,
                   (seed >> 8) % 97);
    }
    b->len = b->off + n;
}

/* Encodes <src> in <piece>-byte steps, decodes the result in 7-byte steps. */
static void round_trip(enum codec_enc e, const struct buf *src, size_t piece)
{
    struct buf enc, dec;
    buf_init(&enc);
    buf_init(&dec);
    struct codec *c = codec_encoder_create(e, 0);
    assert_non_null(c);
    size_t n = buf_pending(src);
    for (size_t off = 0; off < n; off += piece) {
        size_t k = n - off < piece ? n - off : piece;
        assert_int_equal(codec_step(c, buf_head(src) + off, k, false, &enc), CODEC_OK);
    }
    assert_int_equal(codec_step(c, NULL, 0, true, &enc), CODEC_OK);
    assert_true(codec_bytes_in(c) == n);
    codec_destroy(c);
    if (n > 4096)
        assert_true(buf_pending(&enc) < n / 3); // it did compress

    struct codec *d = codec_decoder_create(e, n);
    assert_non_null(d);
    size_t m = buf_pending(&enc);
    for (size_t off = 0; off < m; off += 7) {
        size_t k = m - off < 7 ? m - off : 7;
        assert_int_equal(codec_step(d, buf_head(&enc) + off, k, false, &dec), CODEC_OK);
    }
    assert_int_equal(codec_step(d, NULL, 0, true, &dec), CODEC_OK);
    codec_destroy(d);
    assert_int_equal(buf_pending(&dec), n);
    assert_memory_equal(buf_head(&dec), buf_head(src), n);
    buf_deinit(&enc);
    buf_deinit(&dec);
}

static void test_round_trips(void **state)
{
    (void)state;
    struct buf src;
    buf_init(&src);
    fill_json(&src, 100 * 1024);
    for (size_t i = 0; i < 3; i++) {
        round_trip(all[i], &src, 16384);
        round_trip(all[i], &src, 1000);
        round_trip(all[i], &src, buf_pending(&src));
    }
    struct buf small;
    buf_init(&small);
    buf_append_str(&small, "{}");
    for (size_t i = 0; i < 3; i++)
        round_trip(all[i], &small, 1);
    buf_deinit(&small);
    buf_deinit(&src);
    assert_null(codec_encoder_create(CODEC_IDENTITY, 0));
}

/* 8 MB of zeros compress to a few KB: a decoder bounded at 1 MB stops with TOO_BIG, having
 * produced not much more than its bound. */
static void test_bomb_bound(void **state)
{
    (void)state;
    size_t big = 8u << 20;
    char *zeros = calloc(1, big);
    assert_non_null(zeros);
    for (size_t i = 0; i < 3; i++) {
        struct buf enc, dec;
        buf_init(&enc);
        buf_init(&dec);
        struct codec *c = codec_encoder_create(all[i], 0);
        assert_int_equal(codec_step(c, zeros, big, true, &enc), CODEC_OK);
        codec_destroy(c);
        assert_true(buf_pending(&enc) < 64 * 1024);
        struct codec *d = codec_decoder_create(all[i], 1u << 20);
        int rc = codec_step(d, buf_head(&enc), buf_pending(&enc), true, &dec);
        assert_int_equal(rc, CODEC_TOO_BIG);
        assert_true(buf_pending(&dec) <= (1u << 20) + 65536);
        codec_destroy(d);
        /* the same stream with room for it decodes whole */
        buf_reset(&dec);
        d = codec_decoder_create(all[i], big);
        rc = codec_step(d, buf_head(&enc), buf_pending(&enc), true, &dec);
        if (rc != CODEC_OK)
            fail_msg("%s: %d after %zu bytes", codec_name(all[i]), rc, buf_pending(&dec));
        assert_int_equal(buf_pending(&dec), big);
        codec_destroy(d);
        buf_deinit(&enc);
        buf_deinit(&dec);
    }
    free(zeros);
}

static void test_corrupt_and_truncated(void **state)
{
    (void)state;
    struct buf src;
    buf_init(&src);
    fill_json(&src, 20000);
    for (size_t i = 0; i < 3; i++) {
        struct buf enc, dec;
        buf_init(&enc);
        buf_init(&dec);
        struct codec *c = codec_encoder_create(all[i], 0);
        assert_int_equal(codec_step(c, buf_head(&src), buf_pending(&src), true, &enc), CODEC_OK);
        codec_destroy(c);
        /* truncated: the end of the stream is missing */
        struct codec *d = codec_decoder_create(all[i], 0);
        assert_int_equal(codec_step(d, buf_head(&enc), buf_pending(&enc) / 2, true, &dec),
                         CODEC_ERR);
        codec_destroy(d);
        /* garbage */
        buf_reset(&dec);
        d = codec_decoder_create(all[i], 0);
        static const char junk[] = "this is not a compressed stream at all, not at all......";
        assert_int_equal(codec_step(d, junk, sizeof(junk) - 1, true, &dec), CODEC_ERR);
        codec_destroy(d);
        buf_deinit(&enc);
        buf_deinit(&dec);
    }
    buf_deinit(&src);
}

/* Decodes <in> in pieces of <piece> bytes, then ends; the outcome of the first failing step. */
static int decode_pieces(enum codec_enc e, const char *in, size_t n, size_t piece, struct buf *out)
{
    struct codec *d = codec_decoder_create(e, 0);
    assert_non_null(d);
    int rc = CODEC_OK;
    for (size_t off = 0; off < n && rc == CODEC_OK; off += piece)
        rc = codec_step(d, in + off, n - off < piece ? n - off : piece, false, out);
    if (rc == CODEC_OK)
        rc = codec_step(d, NULL, 0, true, out);
    codec_destroy(d);
    return rc;
}

/* Two streams back to back: zstd frames concatenate (RFC 8878 3.1), so both decode; gzip and br
 * refuse bytes after their stream's end. Either way the outcome does not depend on where the
 * pieces split the input (fuzz_codec found a zstd frame that ended exactly on a piece boundary
 * refused what a whole input accepted). */
static void test_bytes_after_the_end(void **state)
{
    (void)state;
    for (size_t i = 0; i < 3; i++) {
        struct buf enc, whole, split;
        buf_init(&enc);
        buf_init(&whole);
        buf_init(&split);
        for (int k = 0; k < 2; k++) {
            struct codec *c = codec_encoder_create(all[i], 0);
            assert_int_equal(codec_step(c, k ? "second" : "first;", 6, true, &enc), CODEC_OK);
            codec_destroy(c);
        }
        int rw =
            decode_pieces(all[i], buf_head(&enc), buf_pending(&enc), buf_pending(&enc), &whole);
        int rs = decode_pieces(all[i], buf_head(&enc), buf_pending(&enc), 1, &split);
        if (rw != rs)
            fail_msg("%s: whole %d, byte by byte %d", codec_name(all[i]), rw, rs);
        if (all[i] == CODEC_ZSTD) {
            assert_int_equal(rw, CODEC_OK);
            assert_int_equal(buf_pending(&whole), 12);
            assert_memory_equal(buf_head(&whole), "first;second", 12);
            assert_int_equal(buf_pending(&split), 12);
            assert_memory_equal(buf_head(&split), "first;second", 12);
        } else {
            assert_int_equal(rw, CODEC_ERR);
        }
        buf_deinit(&enc);
        buf_deinit(&whole);
        buf_deinit(&split);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_negotiate_table),     cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_bomb_bound),          cmocka_unit_test(test_corrupt_and_truncated),
        cmocka_unit_test(test_bytes_after_the_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
