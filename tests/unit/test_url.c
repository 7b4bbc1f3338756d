/* URL parsing (schemes, ports, IPv6, error messages) and cache-key normalization: RFC 3986
 * §6.2.2 path normalization with §5.2.4 dot-segment removal, and sorted, filtered queries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "http/url.h"

static void test_parse_ok(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        bool tls;
        const char *host;
        int port;
        const char *path;
    } t[] = {
        {"http://example.com", false, "example.com", 80, "/"},
        {"https://example.com", true, "example.com", 443, "/"},
        {"HTTP://Example.com:8080/a/b?x=1", false, "Example.com", 8080, "/a/b?x=1"},
        {"http://127.0.0.1:9/", false, "127.0.0.1", 9, "/"},
        {"http://[::1]:8443/p", false, "::1", 8443, "/p"},
        {"https://[2001:db8::1]/", true, "2001:db8::1", 443, "/"},
        {"http://[::ffff:1.2.3.4]", false, "::ffff:1.2.3.4", 80, "/"},
        {"http://h?q=1", false, "h", 80, "/?q=1"},
        {"http://h/p#frag", false, "h", 80, "/p"},
        {"http://h:65535", false, "h", 65535, "/"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct url u;
        char err[256] = "";
        if (url_parse(t[i].in, &u, err, sizeof(err)) != 0)
            fail_msg("%s: %s", t[i].in, err);
        assert_int_equal(u.tls, t[i].tls);
        assert_string_equal(u.host, t[i].host);
        assert_int_equal(u.port, t[i].port);
        assert_string_equal(u.path, t[i].path);
    }
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *msg; /* part of the message */
    } t[] = {
        {"ftp://h/", "expected http:// or https://"},
        {"example.com", "expected http:// or https://"},
        {"http://", "missing host"},
        {"http://:80/", "missing host"},
        {"http://h:/", "empty port"},
        {"http://h:0/", "out of range"},
        {"http://h:65536/", "out of range"},
        {"http://h:8x/", "not a number"},
        {"http://u:p@h/", "user:password@"},
        {"http://[::1/", "missing ']'"},
        {"http://[]/", "empty IPv6"},
        {"http://[::1]x/", "after ']'"},
        {"http://[g::1]/", "invalid character in IPv6"},
        {"http://a b/", "whitespace"},
        {"http://h/a b", "whitespace"},
        {"http://h\x01/", "control"},
        {"http://h<x>/", "invalid character in host"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct url u;
        char err[256] = "";
        if (url_parse(t[i].in, &u, err, sizeof(err)) != -1)
            fail_msg("accepted %s", t[i].in);
        if (!strstr(err, t[i].msg))
            fail_msg("%s: message \"%s\" lacks \"%s\"", t[i].in, err, t[i].msg);
    }
    /* a long host or path is an error, not an overflow */
    char big[3000] = "http://";
    memset(big + 7, 'a', 300);
    big[307] = '\0';
    struct url u;
    char err[128];
    assert_int_equal(url_parse(big, &u, err, sizeof(err)), -1);
    memcpy(big, "http://h/", 9);
    memset(big + 9, 'p', 2500);
    big[2509] = '\0';
    assert_int_equal(url_parse(big, &u, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "path longer"));
    /* err may be NULL */
    assert_int_equal(url_parse("nope", &u, NULL, 0), -1);
}

static void check_path(const char *in, const char *want)
{
    struct buf b = BUF_INIT;
    buf_append(&b, "K:", 2); /* appends: existing content stays */
    if (url_normalize_path(in, strlen(in), &b) != 0)
        fail_msg("rejected %s", in);
    if (buf_pending(&b) != strlen(want) + 2 || memcmp(buf_head(&b) + 2, want, strlen(want)) != 0)
        fail_msg("%s -> %.*s, want %s", in, (int)buf_pending(&b) - 2, buf_head(&b) + 2, want);
    buf_deinit(&b);
}

static void test_normalize_path(void **state)
{
    (void)state;
    check_path("/", "/");
    check_path("", "/");
    check_path("/a/b/c", "/a/b/c");
    check_path("/a/./b", "/a/b");
    check_path("/a/../b", "/b");
    check_path("/a/b/../../c", "/c");
    check_path("/../a", "/a");
    check_path("/a/..", "/");
    check_path("/a/b/..", "/a/");
    check_path("/a/.", "/a/");
    check_path("/.", "/");
    check_path("/a//b", "/a//b");
    /* RFC 3986 §5.4 examples, absolute-path part */
    check_path("/a/b/c/./../../g", "/a/g");
    check_path("/mid/content=5/../6", "/mid/6");
    /* percent-encodings: unreserved decoded, others upper-cased */
    check_path("/%7euser/%41%62c", "/~user/Abc");
    check_path("/a%2fb", "/a%2Fb");
    check_path("/%e2%82%ac", "/%E2%82%AC");
    check_path("/a%20b", "/a%20b");
    /* encoded dots are dots after decoding (§6.2.2.3 after §6.2.2.2) */
    check_path("/a/%2E%2E/b", "/b");
    check_path("/a/%2e/b", "/a/b");
    /* an encoded slash is not a separator */
    check_path("/a/..%2Fb", "/a/..%2Fb");
    static const char *const bad[] = {"/%", "/%4", "/%G1", "/a%zz", "/%%41"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct buf b = BUF_INIT;
        if (url_normalize_path(bad[i], strlen(bad[i]), &b) != -1)
            fail_msg("accepted %s", bad[i]);
        buf_deinit(&b);
    }
}

/* url_path_canon() of <in> with <flags>: want NULL means refused. The input sits at the end of
 * a page followed by a PROT_NONE page, so a read past it crashes. */
static char *guard_page(size_t *pg)
{
    *pg = (size_t)sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 2 * *pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    assert_int_equal(mprotect(m + *pg, *pg, PROT_NONE), 0);
    return m;
}

static int canon_at_guard(const char *in, size_t n, unsigned flags, char *out, size_t *olen,
                          const char **why)
{
    size_t pg;
    char *m = guard_page(&pg);
    assert_true(n <= pg);
    char *p = m + pg - n;
    memcpy(p, in, n);
    int r = url_path_canon(p, n, flags, out, olen, why);
    munmap(m, 2 * pg);
    return r;
}

#define CANON_ALL (URL_CANON_MERGE_SLASHES | URL_CANON_REJECT_ENCODED_SLASH)

static void check_canon(const char *in, unsigned flags, const char *want)
{
    char out[512];
    size_t n = 0;
    const char *why = "unset";
    int r = canon_at_guard(in, strlen(in), flags, out, &n, &why);
    if (want == NULL) {
        if (r != -1 || why == NULL)
            fail_msg("%s (flags %u) accepted as %.*s, want refused", in, flags, (int)n, out);
        return;
    }
    if (r != 0)
        fail_msg("%s (flags %u) refused (%s), want %s", in, flags, why, want);
    if (n != strlen(want) || memcmp(out, want, n) != 0)
        fail_msg("%s (flags %u) -> %.*s, want %s", in, flags, (int)n, out, want);
    assert_null(why);
}

static void test_path_canon_table(void **state)
{
    (void)state;
    const unsigned K = URL_CANON_REJECT_ENCODED_SLASH; /* the defaults without merging */
    check_canon("/", CANON_ALL, "/");
    check_canon("", CANON_ALL, "/");
    check_canon("/api/x", CANON_ALL, "/api/x");
    /* the bypasses of issue 17: none stays under /api/ as sent, none reaches /internal/ */
    check_canon("/api/../internal/x", CANON_ALL, "/internal/x");
    check_canon("/api/%2e%2e/internal/x", CANON_ALL, "/internal/x");
    check_canon("/api/%2E%2E/internal/x", CANON_ALL, "/internal/x");
    check_canon("/api/.%2e/internal/x", CANON_ALL, "/internal/x");
    check_canon("/api/..%2finternal/x", CANON_ALL, NULL);
    check_canon("/api/..%2finternal/x", 0, "/api/..%2Finternal/x");
    check_canon("/api//../internal/x", CANON_ALL, "/internal/x");
    check_canon("/api//../internal/x", K, "/api/internal/x"); /* ".." took the empty segment */
    check_canon("/api/..%5cinternal/x", CANON_ALL, NULL);
    check_canon("/api/..%5Cinternal/x", 0, "/api/..%5Cinternal/x");
    /* climbing above the root */
    check_canon("/..", CANON_ALL, NULL);
    check_canon("/../a", CANON_ALL, NULL);
    check_canon("/a/../..", CANON_ALL, NULL);
    check_canon("/a/../../b", CANON_ALL, NULL);
    check_canon("/%2e%2e/a", CANON_ALL, NULL);
    check_canon("/a/..", CANON_ALL, "/");
    check_canon("/a/b/..", CANON_ALL, "/a/");
    check_canon("/a/b/../..", CANON_ALL, "/");
    check_canon("/a/./b/.", CANON_ALL, "/a/b/");
    check_canon("/.", CANON_ALL, "/");
    check_canon("/./", CANON_ALL, "/");
    check_canon("/...", CANON_ALL, "/..."); /* not a dot segment */
    check_canon("/a/..b/.c", CANON_ALL, "/a/..b/.c");
    /* slashes */
    check_canon("//a///b//", CANON_ALL, "/a/b/");
    check_canon("//a///b//", K, "//a///b//");
    check_canon("/a/.//b", CANON_ALL, "/a/b");
    /* percent-encodings: unreserved decoded, the others kept upper-cased, NUL never */
    check_canon("/%7euser/%41%62c", CANON_ALL, "/~user/Abc");
    check_canon("/a%20b/%e2%82%ac", CANON_ALL, "/a%20b/%E2%82%AC");
    check_canon("/a%2fb", 0, "/a%2Fb");
    check_canon("/a%00b", 0, NULL);
    check_canon("/a%00b", CANON_ALL, NULL);
    check_canon("/%", CANON_ALL, NULL);
    check_canon("/%4", CANON_ALL, NULL);
    check_canon("/%G1", CANON_ALL, NULL);
    check_canon("/%%41", CANON_ALL, NULL);
    check_canon("/%252e%252e/x", CANON_ALL, "/%252e%252e/x"); /* %25 stays: no double decoding */
    check_canon("/%2f", CANON_ALL, NULL);
    check_canon("a/b", CANON_ALL, NULL); /* not a path */
    /* a raw backslash, whatever the flags (IIS takes it for '/') */
    check_canon("/api/..\\internal/x", CANON_ALL, NULL);
    check_canon("/api/..\\internal/x", 0, NULL);
    /* dot segments with parameters: Tomcat's "..;" */
    check_canon("/api/..;/internal/x", CANON_ALL, NULL);
    check_canon("/api/..;x=1/internal/x", 0, NULL);
    check_canon("/api/%2e%2e;/internal/x", CANON_ALL, NULL);
    check_canon("/api/.;/x", CANON_ALL, NULL);
    check_canon("/api/...;/x", CANON_ALL, "/api/...;/x"); /* not a dot segment anywhere */
    check_canon("/api/x;/y", CANON_ALL, "/api/x;/y");
    check_canon("/api/x;/../y", CANON_ALL, "/api/y");
}

/* Properties over every prefix of hostile inputs and over pseudo-random ones (fixed seed, so a
 * failure replays): never longer than its input, starts with '/', a fixed point of itself and of
 * url_normalize_path() (the cache key's normal form), no dot segment left, no "//" when merged. */
static void canon_props(const char *in, size_t n, unsigned flags)
{
    char out[600], again[600];
    size_t on = 0, an = 0;
    const char *why;
    if (canon_at_guard(in, n, flags, out, &on, &why) != 0) {
        assert_non_null(why);
        return;
    }
    if (on > (n ? n : 1) || on == 0 || out[0] != '/')
        fail_msg("%.*s -> %.*s", (int)n, in, (int)on, out);
    if (url_path_canon(out, on, flags, again, &an, &why) != 0 || an != on ||
        memcmp(out, again, on) != 0)
        fail_msg("%.*s -> %.*s -> %.*s: not a fixed point", (int)n, in, (int)on, out, (int)an,
                 again);
    struct buf b = BUF_INIT;
    assert_int_equal(url_normalize_path(out, on, &b), 0);
    if (buf_pending(&b) != on || memcmp(buf_head(&b), out, on) != 0)
        fail_msg("%.*s -> %.*s: url_normalize_path changes it", (int)n, in, (int)on, out);
    buf_deinit(&b);
    out[on] = '\0';
    assert_null(strstr(out, "/../"));
    assert_null(strstr(out, "/./"));
    if ((on >= 3 && memcmp(out + on - 3, "/..", 3) == 0) ||
        (on >= 2 && memcmp(out + on - 2, "/.", 2) == 0))
        fail_msg("%s ends in a dot segment", out);
    if (flags & URL_CANON_MERGE_SLASHES)
        assert_null(strstr(out, "//"));
    if (flags & URL_CANON_REJECT_ENCODED_SLASH)
        assert_null(strcasestr(out, "%2f"));
    assert_null(strchr(out, '\\'));
    assert_null(strstr(out, "/..;"));
    assert_null(strstr(out, "/.;"));
}

static void test_path_canon_props(void **state)
{
    (void)state;
    static const char *const seeds[] = {
        "/api/../internal/x", "/api/%2e%2e/internal/x", "/api/..%2finternal/x",
        "/api//../internal/x", "/a/b/c/./../../g", "/%2E%2e/%2e./.%2E/..", "//..//.//%2F%5c%00",
        "/a/%7e/%41%2", "/././././", "/a/b/../../../", "/x%25%32%65%25%32%65/"};
    for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++)
        for (size_t n = 1; n <= strlen(seeds[s]); n++) /* every prefix, a byte more each time */
            for (unsigned f = 0; f < 4; f++)
                canon_props(seeds[s], n, f);
    static const char alpha[] = "//..%%2eEfF5cC0a;\\";
    uint32_t x = 12345;
    char in[64];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 1;
        in[0] = '/';
        x = x * 1103515245u + 12345u;
        size_t len = 1 + (x >> 16) % 40;
        while (n < len) {
            x = x * 1103515245u + 12345u;
            in[n++] = alpha[(x >> 16) % (sizeof(alpha) - 1)];
        }
        canon_props(in, n, (unsigned)iter & 3);
    }
}

static void check_query(const char *in, const char *const *ignore, const char *want)
{
    struct buf b = BUF_INIT;
    url_normalize_query(in, strlen(in), ignore, &b);
    /* an empty result may leave the buffer unallocated: compare only what is there */
    if (buf_pending(&b) != strlen(want) ||
        (buf_pending(&b) && memcmp(buf_head(&b), want, strlen(want)) != 0))
        fail_msg("%s -> %.*s, want %s", in, (int)buf_pending(&b), b.data ? buf_head(&b) : "",
                 want);
    buf_deinit(&b);
}

static void test_normalize_query(void **state)
{
    (void)state;
    check_query("b=2&a=1", NULL, "a=1&b=2");
    /* a repeated name keeps its order: "id=1&id=2" and "id=2&id=1" are different requests to an
     * origin that reads the first (or the last) value, so they must be different keys */
    check_query("a=2&a=1&a=10", NULL, "a=2&a=1&a=10");
    check_query("id=2&b=1&id=1", NULL, "b=1&id=2&id=1");
    check_query("id=1&b=1&id=2", NULL, "b=1&id=1&id=2");
    check_query("a&&b=&=c&", NULL, "=c&a&b="); /* empty parameters dropped */
    check_query("", NULL, "");
    check_query("x=1", NULL, "x=1");
    /* "ab" sorts after "a" whatever the value */
    check_query("ab=1&a=2", NULL, "a=2&ab=1");
    const char *ign[] = {"utm_*", "fbclid", NULL};
    check_query("utm_source=x&b=1&fbclid=9&utm_=2&fbclidx=3&a=0", ign, "a=0&b=1&fbclidx=3");
    check_query("utm_a=1&fbclid=2", ign, "");
    const char *all[] = {"*", NULL};
    check_query("a=1&b=2", all, "");
    /* ';' parameter cloaking: a query with ';' is keyed as sent */
    check_query("utm_source=x;callback=evil", ign, "utm_source=x;callback=evil");
    check_query("b=1;a=2&utm_x=3", ign, "b=1;a=2&utm_x=3");
    check_query("a=1%3Bb=2&utm_x=3", ign, "a=1%3Bb=2"); /* encoded: one value, split on & */
    /* many parameters (beyond the on-stack array) */
    char q[2048] = "";
    size_t n = 0;
    for (int i = 99; i >= 0; i--)
        n += (size_t)snprintf(q + n, sizeof(q) - n, "%sk%02d=v", i == 99 ? "" : "&", i);
    struct buf b = BUF_INIT;
    url_normalize_query(q, n, NULL, &b);
    assert_int_equal(buf_pending(&b), n);
    assert_memory_equal(buf_head(&b), "k00=v&k01=v&k02=v", 17);
    buf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),       cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_normalize_path), cmocka_unit_test(test_normalize_query),
        cmocka_unit_test(test_path_canon_table), cmocka_unit_test(test_path_canon_props),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
