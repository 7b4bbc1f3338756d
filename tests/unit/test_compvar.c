/* The compression filter's decisions (gateway/compvar.c): judging a response by its head (type,
 * size, no-transform, ranges, its own coding, statuses), the same from a stored head, the
 * representation each client gets (encoded, as it is, decoded), variant ETags, and the head of a
 * derived variant. */
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
#include "gateway/compvar.h"
#include "gateway/gwconf.h"
#include "http/h1parse.h"

static struct gw_compress cfg_default(void)
{
    struct gw_compress c;
    memset(&c, 0, sizeof(c));
    c.enabled = true;
    c.min_size = 1024;
    return c; // types empty: application/json, text/*
}

#define H(n, v) {n, sizeof(n) - 1, v, sizeof(v) - 1}

static void test_judge(void **state)
{
    (void)state;
    struct gw_compress cfg = cfg_default();
    struct h1_header json[] = {H("Content-Type", "application/json; charset=utf-8")};
    uint32_t m = compvar_judge(&cfg, 200, json, 1, true, 5000);
    assert_true(m & COMPVAR_JUDGED);
    assert_true(m & COMPVAR_FITS);
    assert_int_equal(COMPVAR_CODING(m), CODEC_IDENTITY);
    assert_false(compvar_judge(&cfg, 200, json, 1, true, 500) & COMPVAR_FITS); // tiny
    assert_true(compvar_judge(&cfg, 200, json, 1, false, 0) & COMPVAR_FITS);  // chunked
    assert_true(compvar_judge(&cfg, 404, json, 1, true, 5000) & COMPVAR_FITS);
    assert_true(compvar_judge(&cfg, 206, json, 1, true, 5000) & COMPVAR_KEEP);
    assert_true(compvar_judge(&cfg, 304, json, 1, true, 5000) & COMPVAR_KEEP);
    assert_true(compvar_judge(&cfg, 204, json, 1, true, 0) & COMPVAR_KEEP);
    struct h1_header png[] = {H("Content-Type", "image/png")};
    assert_false(compvar_judge(&cfg, 200, png, 1, true, 5000) & COMPVAR_FITS);
    struct h1_header html[] = {H("content-type", "TEXT/html")};
    assert_true(compvar_judge(&cfg, 200, html, 1, true, 5000) & COMPVAR_FITS);
    assert_false(compvar_judge(&cfg, 200, NULL, 0, true, 5000) & COMPVAR_FITS); // no type
    struct h1_header nt[] = {H("Content-Type", "application/json"),
                             H("Cache-Control", "public, no-transform")};
    assert_true(compvar_judge(&cfg, 200, nt, 2, true, 5000) & COMPVAR_KEEP);
    struct h1_header cr[] = {H("Content-Type", "application/json"),
                             H("Content-Range", "bytes 0-9/100")};
    assert_true(compvar_judge(&cfg, 200, cr, 2, true, 5000) & COMPVAR_KEEP);
    struct h1_header gz[] = {H("Content-Type", "application/json"), H("Content-Encoding", "gzip")};
    m = compvar_judge(&cfg, 200, gz, 2, true, 10);
    assert_int_equal(COMPVAR_CODING(m), CODEC_GZIP);
    assert_false(m & COMPVAR_FITS); // never encoded twice
    struct h1_header id[] = {H("Content-Type", "application/json"),
                             H("Content-Encoding", "identity")};
    assert_true(compvar_judge(&cfg, 200, id, 2, true, 5000) & COMPVAR_FITS);
    struct h1_header dfl[] = {H("Content-Encoding", "deflate")};
    assert_int_equal(COMPVAR_CODING(compvar_judge(&cfg, 200, dfl, 1, true, 5000)),
                     COMPVAR_UNKNOWN);
    struct h1_header two[] = {H("Content-Encoding", "gzip"), H("Content-Encoding", "br")};
    assert_int_equal(COMPVAR_CODING(compvar_judge(&cfg, 200, two, 2, true, 5000)),
                     COMPVAR_UNKNOWN);
    /* the route's own list */
    char *types[] = {"application/*"};
    cfg.types.v = types;
    cfg.types.n = 1;
    assert_true(compvar_judge(&cfg, 200, png, 1, true, 5000) == COMPVAR_JUDGED);
    struct h1_header xml[] = {H("Content-Type", "application/xml")};
    assert_true(compvar_judge(&cfg, 200, xml, 1, true, 5000) & COMPVAR_FITS);
    assert_false(compvar_judge(&cfg, 200, html, 1, true, 5000) & COMPVAR_FITS);
}

static void test_judge_stored(void **state)
{
    (void)state;
    struct gw_compress cfg = cfg_default();
    const char *h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: \"a\"\r\n"
                    "Content-Length: 5000\r\n";
    uint32_t m = compvar_judge_stored(&cfg, 200, h, strlen(h), 5000);
    assert_true(m & COMPVAR_FITS);
    assert_false(compvar_judge_stored(&cfg, 200, h, strlen(h), 100) & COMPVAR_FITS);
    const char *nt = "HTTP/1.1 200 OK\r\ncache-control:max-age=9,no-transform\r\n"
                     "content-type: text/plain\r\n";
    assert_true(compvar_judge_stored(&cfg, 200, nt, strlen(nt), 5000) & COMPVAR_KEEP);
    const char *br = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Content-Encoding:  br \r\n";
    m = compvar_judge_stored(&cfg, 200, br, strlen(br), 5000);
    assert_int_equal(COMPVAR_CODING(m), CODEC_BR);
    /* many other lines before the ones that matter do not hide them */
    struct buf b;
    buf_init(&b);
    buf_append_str(&b, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 200; i++)
        buf_printf(&b, "X-Filler-%d: v\r\n", i);
    buf_append_str(&b, "Cache-Control: no-transform\r\n");
    assert_true(compvar_judge_stored(&cfg, 200, b.data, b.len, 5000) & COMPVAR_KEEP);
    buf_deinit(&b);
}

static void test_pick(void **state)
{
    (void)state;
    uint32_t fits = COMPVAR_JUDGED | COMPVAR_FITS;
    unsigned all = (1u << CODEC_GZIP) | (1u << CODEC_BR) | (1u << CODEC_ZSTD);
    struct compvar_pick p = compvar_pick(fits, CODEC_GZIP, all, false);
    assert_int_equal(p.id, CODEC_GZIP);
    assert_true(p.vary);
    assert_false(p.required);
    p = compvar_pick(fits, CODEC_IDENTITY, 0, false); // no Accept-Encoding
    assert_int_equal(p.id, 0);
    assert_true(p.vary); // the identity answer varies too
    p = compvar_pick(fits, CODEC_BR, all, true); // HEAD, Range, no-transform request
    assert_int_equal(p.id, 0);
    assert_true(p.vary);
    p = compvar_pick(COMPVAR_JUDGED, CODEC_BR, all, false); // not a fitting response
    assert_int_equal(p.id, 0);
    assert_false(p.vary);
    p = compvar_pick(fits | COMPVAR_KEEP, CODEC_BR, all, false);
    assert_int_equal(p.id, 0);
    assert_false(p.vary);
    /* an encoded response */
    uint32_t gz = COMPVAR_JUDGED | (CODEC_GZIP << 4);
    p = compvar_pick(gz, CODEC_BR, all, false); // takes gzip: as it is
    assert_int_equal(p.id, 0);
    assert_true(p.vary);
    p = compvar_pick(gz, CODEC_BR, 1u << CODEC_BR, false); // br only: decoded
    assert_int_equal(p.id, COMPVAR_DECODED);
    assert_true(p.required);
    p = compvar_pick(gz, CODEC_IDENTITY, 0, true); // no Accept-Encoding, even a Range
    assert_int_equal(p.id, COMPVAR_DECODED);
    p = compvar_pick(gz | COMPVAR_KEEP, CODEC_IDENTITY, 0, false); // no-transform: untouched
    assert_int_equal(p.id, 0);
    p = compvar_pick(COMPVAR_JUDGED | (COMPVAR_UNKNOWN << 4), CODEC_IDENTITY, 0, false);
    assert_int_equal(p.id, 0);
    assert_string_equal(compvar_name(CODEC_ZSTD), "zstd");
    assert_string_equal(compvar_name(COMPVAR_DECODED), "identity");
}

static void test_etag(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out; // out NULL: refused
    } t[] = {
        {"\"v1\"", "W/\"v1-gzip\""},
        {"W/\"v1\"", "W/\"v1-gzip\""},
        {"\"\"", "W/\"-gzip\""},
        {"v1", NULL},
        {"\"v1", NULL},
        {"W/", NULL},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct buf b;
        buf_init(&b);
        int rc = compvar_etag(t[i].in, strlen(t[i].in), "gzip", &b);
        if (t[i].out == NULL) {
            assert_int_equal(rc, -1);
            assert_int_equal(b.len, 0);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(b.len, strlen(t[i].out));
            assert_memory_equal(b.data, t[i].out, b.len);
        }
        buf_deinit(&b);
    }
}

static void test_head(void **state)
{
    (void)state;
    const char *h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: \"v1\"\r\n"
                    "Accept-Ranges: bytes\r\nCache-Control: max-age=60\r\n"
                    "Content-Length: 5000\r\n";
    struct buf b;
    buf_init(&b);
    compvar_head(h, strlen(h), CODEC_BR, 321, &b);
    buf_append(&b, "", 1);
    assert_string_equal(b.data, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                "Cache-Control: max-age=60\r\nContent-Encoding: br\r\n"
                                "ETag: W/\"v1-br\"\r\nVary: Accept-Encoding\r\n"
                                "Content-Length: 321\r\n");
    buf_reset(&b);
    const char *e = "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n"
                    "ETag: bad";
    compvar_head(e, strlen(e), COMPVAR_DECODED, 5000, &b);
    buf_append(&b, "", 1);
    assert_string_equal(b.data, "HTTP/1.1 200 OK\r\nVary: Accept-Encoding\r\n"
                                "Content-Length: 5000\r\n");
    buf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_judge),
        cmocka_unit_test(test_judge_stored),
        cmocka_unit_test(test_pick),
        cmocka_unit_test(test_etag),
        cmocka_unit_test(test_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
