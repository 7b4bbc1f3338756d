/* Unit tests for cache/policy.c: request classification (credentials never share entries),
 * storability, freshness precedence (s-maxage > max-age > Expires > heuristic > route ttl), age
 * correction, usability windows, and cache keys (query order, ignored params, Vary). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cache/keyhash.h"
#include "cache/policy.h"
#include "http/date.h"

static struct h1_header req_headers[32];
static struct h1_header res_headers[32];

static void parse_req(const char *text, struct h1_request *req)
{
    int n = h1_parse_request(text, strlen(text), req, req_headers, 32, NULL);
    assert_true(n > 0);
}

static void parse_res(const char *text, struct h1_response *res)
{
    int n = h1_parse_response(text, strlen(text), res, res_headers, 32, NULL, false);
    assert_true(n > 0);
}

static const struct policy_conf rfc = {0};

static void test_classify(void **state)
{
    (void)state;
    struct h1_request req;
    struct policy_req p;
    parse_req("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", &req);
    policy_classify_request(&rfc, &req, &p);
    assert_int_equal(p.action, POLICY_REQ_CACHE);
    parse_req("GET /a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer A\r\n\r\n", &req);
    policy_classify_request(&rfc, &req, &p);
    assert_int_equal(p.action, POLICY_REQ_BYPASS);
    assert_string_equal(p.why, "authorization");
    parse_req("GET /a HTTP/1.1\r\nHost: x\r\nCookie: s=1\r\n\r\n", &req);
    policy_classify_request(&rfc, &req, &p);
    assert_int_equal(p.action, POLICY_REQ_BYPASS);
    /* A route that keys on Authorization caches per user. */
    static const char *const vary_auth[] = {"Authorization", NULL};
    struct policy_conf per_user = {.ttl_ms = 60000, .override = true, .vary = vary_auth};
    parse_req("GET /me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer A\r\n\r\n", &req);
    policy_classify_request(&per_user, &req, &p);
    assert_int_equal(p.action, POLICY_REQ_CACHE);
    parse_req("PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", &req);
    policy_classify_request(&rfc, &req, &p);
    assert_int_equal(p.action, POLICY_REQ_UNSAFE);
    parse_req("GET /a HTTP/1.1\r\nHost: x\r\nCache-Control: no-cache\r\n\r\n", &req);
    policy_classify_request(&rfc, &req, &p);
    assert_true(p.no_cache);
    parse_req("GET /a HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\n\r\n", &req);
    policy_classify_request(&rfc, &req, &p);
    assert_true(p.no_cache);
}

static const char *storable(const struct policy_conf *pc, const char *res_text,
                            struct policy_fresh *f)
{
    struct h1_request req;
    struct policy_req p;
    struct h1_response res;
    parse_req("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", &req);
    policy_classify_request(pc, &req, &p);
    parse_res(res_text, &res);
    /* Date in the responses below is 1994-11-06 08:49:37 = 784111777. */
    return policy_storable(pc, &req, &p, &res, 784111777, 784111777, f);
}

static void test_freshness_precedence(void **state)
{
    (void)state;
    struct policy_fresh f;
    assert_null(storable(&rfc, "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                               "Cache-Control: max-age=60, s-maxage=30\r\n"
                               "Expires: Sun, 06 Nov 1994 09:49:37 GMT\r\nContent-Length: 0\r\n\r\n",
                         &f));
    assert_int_equal(f.lifetime_ms, 30000);
    assert_null(storable(&rfc, "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                               "Cache-Control: max-age=60\r\n"
                               "Expires: Sun, 06 Nov 1994 09:49:37 GMT\r\nContent-Length: 0\r\n\r\n",
                         &f));
    assert_int_equal(f.lifetime_ms, 60000);
    assert_null(storable(&rfc, "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                               "Expires: Sun, 06 Nov 1994 09:49:37 GMT\r\nContent-Length: 0\r\n\r\n",
                         &f));
    assert_int_equal(f.lifetime_ms, 3600000);
    /* Heuristic: 10% of (Date - Last-Modified) = 10% of 10 h = 1 h. */
    assert_null(storable(&rfc, "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                               "Last-Modified: Sat, 05 Nov 1994 22:49:37 GMT\r\nContent-Length: 0\r\n\r\n",
                         &f));
    assert_int_equal(f.lifetime_ms, 3600000);
    /* Route ttl when the origin says nothing. */
    struct policy_conf ttl = {.ttl_ms = 5000};
    assert_null(storable(&ttl, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &f));
    assert_int_equal(f.lifetime_ms, 5000);
    /* Override beats the origin's no-store. */
    struct policy_conf ovr = {.ttl_ms = 7000, .override = true};
    assert_null(storable(&ovr, "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 0\r\n\r\n", &f));
    assert_int_equal(f.lifetime_ms, 7000);
}

static void test_not_storable(void **state)
{
    (void)state;
    struct policy_fresh f;
    assert_string_equal(storable(&rfc, "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 0\r\n\r\n", &f), "no-store");
    assert_string_equal(storable(&rfc, "HTTP/1.1 200 OK\r\nCache-Control: private\r\nContent-Length: 0\r\n\r\n", &f), "private");
    assert_string_equal(storable(&rfc, "HTTP/1.1 200 OK\r\nVary: *\r\nCache-Control: max-age=9\r\nContent-Length: 0\r\n\r\n", &f), "vary-star");
    assert_string_equal(storable(&rfc, "HTTP/1.1 200 OK\r\nSet-Cookie: a=b\r\nCache-Control: max-age=9\r\nContent-Length: 0\r\n\r\n", &f), "set-cookie");
    assert_string_equal(storable(&rfc, "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", &f), "status");
    /* No freshness information and no validator: pointless to store. */
    assert_string_equal(storable(&rfc, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &f), "no-freshness");
    /* An explicit lifetime makes a non-heuristic status storable. */
    assert_null(storable(&rfc, "HTTP/1.1 302 Found\r\nCache-Control: max-age=5\r\nContent-Length: 0\r\n\r\n", &f));
}

static void test_age_correction(void **state)
{
    (void)state;
    struct h1_request req;
    struct policy_req p;
    struct h1_response res;
    struct policy_fresh f;
    parse_req("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", &req);
    policy_classify_request(&rfc, &req, &p);
    parse_res("HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nAge: 30\r\n"
              "Cache-Control: max-age=100\r\nContent-Length: 0\r\n\r\n", &res);
    /* Request sent 2 s before the response arrived: corrected age = 30 + 2. */
    assert_null(policy_storable(&rfc, &req, &p, &res, 784111775, 784111777, &f));
    assert_int_equal(f.initial_age_ms, 32000);
    assert_int_equal(policy_age_ms(f.initial_age_ms, 1000, 6000), 37000);
}

static void test_usable_windows(void **state)
{
    (void)state;
    struct policy_fresh f = {.lifetime_ms = 10000, .swr_ms = 5000, .sie_ms = 60000};
    struct policy_req p;
    memset(&p, 0, sizeof(p));
    cachectl_init(&p.cc);
    assert_int_equal(policy_usable(&f, 9999, &p), POLICY_USE_FRESH);
    assert_int_equal(policy_usable(&f, 10000, &p), POLICY_USE_STALE_SWR);
    assert_int_equal(policy_usable(&f, 14999, &p), POLICY_USE_STALE_SWR);
    assert_int_equal(policy_usable(&f, 15000, &p), POLICY_USE_REVALIDATE);
    assert_true(policy_stale_if_error_ok(&f, 69999, &p));
    assert_false(policy_stale_if_error_ok(&f, 70000, &p));
    f.must_revalidate = true;
    assert_int_equal(policy_usable(&f, 10001, &p), POLICY_USE_REVALIDATE);
    assert_false(policy_stale_if_error_ok(&f, 10001, &p));
    f.must_revalidate = false;
    p.cc.max_age = 5; /* client wants at most 5 s old */
    assert_int_equal(policy_usable(&f, 6000, &p), POLICY_USE_REVALIDATE);
    p.no_cache = true;
    assert_int_equal(policy_usable(&f, 0, &p), POLICY_USE_REVALIDATE);
}

static void key_of(const struct policy_conf *pc, const char *req_text, const char *vary,
                   char *out, size_t outlen, long *primary)
{
    struct h1_request req;
    parse_req(req_text, &req);
    struct buf b = BUF_INIT;
    *primary = policy_build_key(pc, &req, vary, vary ? strlen(vary) : 0, &b);
    assert_true(b.len < outlen);
    memcpy(out, b.data, b.len);
    out[b.len] = '\0';
    buf_deinit(&b);
}

static void test_keys(void **state)
{
    (void)state;
    char a[512], b[512];
    long pa, pb;
    static const char *const ignore[] = {"utm_*", NULL};
    struct policy_conf pc = {.ignore_query = ignore};
    key_of(&pc, "GET /api/orders?user_id=7&b=2&utm_source=x HTTP/1.1\r\nHost: API.example\r\n\r\n", NULL, a, sizeof(a), &pa);
    key_of(&pc, "HEAD /api/orders?b=2&user_id=7 HTTP/1.1\r\nHost: api.example\r\n\r\n", NULL, b, sizeof(b), &pb);
    assert_string_equal(a, b);
    assert_int_equal(pa, (long)strlen(a));
    assert_string_equal(a, "GET api.example/api/orders?b=2&user_id=7"); /* the host lowered */
    key_of(&pc, "GET /api/orders?user_id=8 HTTP/1.1\r\nHost: api.example\r\n\r\n", NULL, b, sizeof(b), &pb);
    assert_string_not_equal(a, b);
    /* Vary: the primary part is shared, the full key differs per header value. */
    key_of(&pc, "GET /x HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n", "Accept-Encoding", a, sizeof(a), &pa);
    key_of(&pc, "GET /x HTTP/1.1\r\nHost: h\r\nAccept-Encoding: br\r\n\r\n", "Accept-Encoding", b, sizeof(b), &pb);
    assert_int_equal(pa, pb);
    assert_memory_equal(a, b, (size_t)pa);
    assert_string_not_equal(a, b);
    /* Per-user routes: the Authorization value is part of the key. */
    static const char *const vary_auth[] = {"Authorization", NULL};
    struct policy_conf per_user = {.vary = vary_auth};
    key_of(&per_user, "GET /me HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer A\r\n\r\n", NULL, a, sizeof(a), &pa);
    key_of(&per_user, "GET /me HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer B\r\n\r\n", NULL, b, sizeof(b), &pb);
    assert_string_not_equal(a, b);
    /* A path not in normal form gets no key: the origin sees it as sent, where it may name
     * another resource than its normal form, so it must neither fill nor read /b's entry. */
    static const char *const not_normal[] = {"/a/../b", "/a/%2E%2E/b", "/./b", "/%62", "/b/.",
                                             "/a%2fb", "/a/%zz"};
    for (size_t i = 0; i < sizeof(not_normal) / sizeof(not_normal[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "GET %s?q=1 HTTP/1.1\r\nHost: h\r\n\r\n", not_normal[i]);
        struct h1_request req;
        parse_req(text, &req);
        struct buf kb = BUF_INIT;
        if (policy_build_key(&pc, &req, NULL, 0, &kb) != -1)
            fail_msg("%s got a key: %.*s", not_normal[i], (int)kb.len, kb.data);
        assert_int_equal(kb.len, 0);
        buf_deinit(&kb);
    }
    key_of(&pc, "GET /a/%2F/%20b?q=1 HTTP/1.1\r\nHost: h\r\n\r\n", NULL, a, sizeof(a), &pa);
    assert_string_equal(a, "GET h/a/%2F/%20b?q=1");
    key_of(&pc, "GET http://h HTTP/1.1\r\nHost: h\r\n\r\n", NULL, a, sizeof(a), &pa);
    assert_string_equal(a, "GET h/");
    /* A request that came over TLS (the session sets req.https): another variant of the same
     * primary key, so purges of the path reach both and neither scheme gets the other's answer;
     * no header value can spell the marker. */
    struct h1_request tr;
    parse_req("GET /p?q=1 HTTP/1.1\r\nHost: h\r\nscheme: https\r\n\r\n", &tr);
    static const char *const vary_scheme[] = {"scheme", NULL};
    struct policy_conf pv = {.vary = vary_scheme};
    struct buf k1 = BUF_INIT, k2 = BUF_INIT;
    long p1 = policy_build_key(&pv, &tr, NULL, 0, &k1);
    tr.https = true;
    long p2 = policy_build_key(&pv, &tr, NULL, 0, &k2);
    assert_int_equal(p1, p2);
    assert_memory_equal(k1.data, k2.data, (size_t)p1);
    assert_true(k1.len != k2.len || memcmp(k1.data, k2.data, k1.len) != 0);
    assert_memory_equal(k2.data + p2, "\n:scheme:https", 14);
    buf_deinit(&k1);
    buf_deinit(&k2);
}

/* Keys of varied routes carry a keyed hash of the header values, never the values (a key goes
 * to Redis): the hash is the RFC 4231 HMAC-SHA256, per value, per secret; "a, b" and "a,b" and
 * two field lines "a" + "b" still share an entry. */
static void test_keys_hashed(void **state)
{
    (void)state;
    /* RFC 4231 test case 2, first 128 bits */
    struct keyhash *jefe = keyhash_create("Jefe", 4);
    struct buf hb = BUF_INIT;
    keyhash_append(jefe, "what do ya want for nothing?", 28, &hb);
    assert_int_equal(hb.len, KEYHASH_HEX_LEN);
    assert_memory_equal(hb.data, "5bdcc146bf60754e6a042426089575c7", KEYHASH_HEX_LEN);
    buf_deinit(&hb);

    struct keyhash *k1 = keyhash_create("0123456789abcdef-secret-one", 27);
    struct keyhash *k2 = keyhash_create("0123456789abcdef-secret-two", 27);
    static const char *const vary_auth[] = {"Authorization", NULL};
    struct policy_conf pc = {.vary = vary_auth, .key_hash = k1};
    char a[512], b[512], c[512];
    long pa, pb, pcl;
    key_of(&pc, "GET /me HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer tok-alice-SECRET\r\n\r\n", "Accept-Language", a, sizeof(a), &pa);
    assert_null(strstr(a, "SECRET"));
    assert_null(strstr(a, "alice"));
    /* the layout: primary, then "\n<name>:<32 hex>" per header */
    assert_int_equal(strlen(a), (size_t)pa + strlen("\nauthorization:") + KEYHASH_HEX_LEN +
                                    strlen("\naccept-language:") + KEYHASH_HEX_LEN);
    assert_memory_equal(a + pa, "\nauthorization:", 15);
    key_of(&pc, "GET /me HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer tok-bob-SECRET\r\n\r\n", "Accept-Language", b, sizeof(b), &pb);
    assert_string_not_equal(a, b);
    key_of(&pc, "GET /me HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer tok-alice-SECRET\r\n\r\n", "Accept-Language", b, sizeof(b), &pb);
    assert_string_equal(a, b); /* deterministic */
    pc.key_hash = k2;
    key_of(&pc, "GET /me HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer tok-alice-SECRET\r\n\r\n", "Accept-Language", c, sizeof(c), &pcl);
    assert_string_not_equal(a, c); /* another secret, another key */
    assert_memory_equal(a, c, (size_t)pa); /* the primary key is not hashed */
    pc.key_hash = k1;
    key_of(&pc, "GET /x HTTP/1.1\r\nHost: h\r\nAuthorization: t\r\nAccept: a, b\r\n\r\n", "Accept", a, sizeof(a), &pa);
    key_of(&pc, "GET /x HTTP/1.1\r\nHost: h\r\nAuthorization: t\r\nAccept: a,b\r\n\r\n", "Accept", b, sizeof(b), &pb);
    key_of(&pc, "GET /x HTTP/1.1\r\nHost: h\r\nAccept: a\r\nAuthorization: t\r\nAccept: b\r\n\r\n", "Accept", c, sizeof(c), &pcl);
    assert_string_equal(a, b);
    assert_string_equal(a, c);
    keyhash_destroy(jefe);
    keyhash_destroy(k1);
    keyhash_destroy(k2);
}

/* On a cached route an unkeyed header an origin may act on is dropped, unless vary names it. */
static void test_strip_unkeyed(void **state)
{
    (void)state;
    struct policy_conf pc = {0};
    for (const char *const *u = policy_unkeyed_headers; *u != NULL; u++)
        assert_true(policy_strip_request_header(&pc, *u, strlen(*u)));
    assert_true(policy_strip_request_header(&pc, "X-Original-URL", 14));
    assert_true(policy_strip_request_header(&pc, "X-HTTP-METHOD-OVERRIDE", 22));
    assert_false(policy_strip_request_header(&pc, "X-Original-URLs", 15));
    assert_false(policy_strip_request_header(&pc, "X-Original-UR", 13));
    assert_false(policy_strip_request_header(&pc, "Accept", 6));
    assert_false(policy_strip_request_header(&pc, "X-Api-Key", 9));
    static const char *const vary[] = {"Accept", "x-original-host", NULL};
    pc.vary = vary;
    assert_false(policy_strip_request_header(&pc, "X-Original-Host", 15)); /* keyed: kept */
    assert_true(policy_strip_request_header(&pc, "X-Host", 6));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),      cmocka_unit_test(test_freshness_precedence),
        cmocka_unit_test(test_not_storable),  cmocka_unit_test(test_age_correction),
        cmocka_unit_test(test_usable_windows), cmocka_unit_test(test_keys),
        cmocka_unit_test(test_keys_hashed),   cmocka_unit_test(test_strip_unkeyed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
