/* Unit tests for cache/cache.c: an entry filled from a response is found again with its Age, the
 * bytes of a hit (head + per-hit block + body) form a valid response, Vary markers split
 * variants, path generations invalidate every query and variant of a path, a 304 refresh keeps
 * the body and the representation fields, conditional matching (If-None-Match weak comparison,
 * If-Modified-Since), admin purges by path and prefix, and the Age parsing rules of policy.c.
 * Time is passed in: no sleeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache/cache.h"
#include "http/date.h"

static struct h1_header req_headers[32];
static struct h1_header res_headers[32];
static struct h1_request req;
static struct h1_response res;
static const struct policy_conf rfc = {.max_stale_ms = 3600000};

static void parse_req(const char *text)
{
    assert_true(h1_parse_request(text, strlen(text), &req, req_headers, 32, NULL) > 0);
}

static void parse_res(const char *text)
{
    assert_true(h1_parse_response(text, strlen(text), &res, res_headers, 32, NULL, false) > 0);
}

/* Stores the response <head> + <body> for the current request at <now_ms>. */
static void store(struct cache *c, const char *head, const char *body, uint64_t now_ms,
                  int64_t wall)
{
    parse_res(head);
    struct policy_req p;
    policy_classify_request(&rfc, &req, &p);
    struct buf key = BUF_INIT;
    struct cache_found f;
    assert_int_equal(cache_lookup(c, &rfc, &req, &p, now_ms, &key, &f), 0);
    cache_release(c, f.obj);
    const char *why = "?";
    struct cache_fill *fill = cache_fill_begin(c, &rfc, &req, &p, &res, wall, wall, now_ms,
                                               f.path_gen, 1 << 20, NULL, &why);
    assert_non_null(fill);
    assert_int_equal(cache_fill_body(fill, body, strlen(body)), 0);
    assert_int_equal(cache_fill_end(c, fill, now_ms), 0);
    buf_deinit(&key);
}

/* Looks the current request up; returns the entry's object (referenced) or NULL. */
static struct store_obj *find(struct cache *c, uint64_t now_ms, struct cache_found *f)
{
    struct policy_req p;
    policy_classify_request(&rfc, &req, &p);
    struct buf key = BUF_INIT;
    assert_int_equal(cache_lookup(c, &rfc, &req, &p, now_ms, &key, f), 0);
    buf_deinit(&key);
    return f->obj;
}

static int64_t wall0;
static char date0[HTTP_DATE_LEN + 1];

static int setup(void **state)
{
    (void)state;
    wall0 = 1700000000;
    http_date_format(wall0, date0);
    return 0;
}

static void test_fill_and_hit(void **state)
{
    (void)state;
    struct cache *c = cache_create(1 << 20, 4, 60000);
    parse_req("GET /api/users/7?b=2&a=1 HTTP/1.1\r\nHost: Example.org\r\n\r\n");
    char head[512];
    snprintf(head, sizeof(head),
             "HTTP/1.1 200 OK\r\nDate: %s\r\nCache-Control: max-age=60\r\nConnection: "
             "keep-alive\r\nKeep-Alive: timeout=5\r\nAge: 3\r\nETag: \"v1\"\r\nContent-Length: "
             "5\r\n\r\n",
             date0);
    store(c, head, "hello", 1000, wall0);
    struct cache_found f;
    parse_req("GET /api/users/7?a=1&b=2 HTTP/1.1\r\nHost: example.org\r\n\r\n");
    struct store_obj *o = find(c, 11000, &f);
    assert_non_null(o);
    assert_int_equal(f.use, POLICY_USE_FRESH);
    assert_int_equal(f.age_ms, 13000); /* Age 3 s + 10 s resident */
    const struct cache_entry *e = f.e;
    assert_int_equal(e->body_len, 5);
    assert_memory_equal(e->data + e->head_len, "hello", 5);
    /* hop-by-hop fields and the origin's Age are not stored; the length is */
    char *h = strndup(e->data, e->head_len);
    assert_null(strstr(h, "Keep-Alive"));
    assert_null(strstr(h, "Connection"));
    assert_null(strstr(h, "Age:"));
    assert_non_null(strstr(h, "Content-Length: 5\r\n"));
    assert_true(strncmp(h, "HTTP/1.1 200 OK\r\n", 17) == 0);
    free(h);
    assert_int_equal(e->etag_len, 4);
    assert_memory_equal(e->etag, "\"v1\"", 4);
    /* the memory limit counts what the entry holds: its bytes and its field index */
    assert_true(e->index_bytes >= e->nfields * sizeof(*e->fields) + e->head_len);
    assert_int_equal(o->size - o->key_len - STORE_OBJ_OVERHEAD,
                     e->head_len + e->body_len + e->index_bytes);
    struct cache_stats st;
    cache_stats(c, &st);
    assert_int_equal(st.store.bytes, o->size);
    /* the per-hit block completes the head */
    char block[160];
    size_t n = cache_hit_block(block, f.age_ms, CACHE_HIT, "Connection: close\r\n");
    block[n] = '\0';
    assert_string_equal(block, "Age: 13\r\nX-Cache: HIT\r\nConnection: close\r\n\r\n");
    cache_release(c, o);
    /* past max-age: must revalidate */
    o = find(c, 61000, &f);
    assert_non_null(o);
    assert_int_equal(f.use, POLICY_USE_REVALIDATE);
    cache_release(c, o);
    cache_destroy(c);
}

static void test_vary(void **state)
{
    (void)state;
    struct cache *c = cache_create(1 << 20, 4, 60000);
    char head[512];
    snprintf(head, sizeof(head),
             "HTTP/1.1 200 OK\r\nDate: %s\r\nCache-Control: max-age=60\r\nVary: Accept-Language"
             "\r\nContent-Length: 2\r\n\r\n",
             date0);
    parse_req("GET /v HTTP/1.1\r\nHost: x\r\nAccept-Language: en\r\n\r\n");
    store(c, head, "en", 1000, wall0);
    parse_req("GET /v HTTP/1.1\r\nHost: x\r\nAccept-Language: fr\r\n\r\n");
    struct cache_found f;
    assert_null(find(c, 2000, &f));
    store(c, head, "fr", 2000, wall0);
    parse_req("GET /v HTTP/1.1\r\nHost: x\r\nAccept-Language: en\r\n\r\n");
    struct store_obj *o = find(c, 3000, &f);
    assert_non_null(o);
    assert_memory_equal(f.e->data + f.e->head_len, "en", 2);
    cache_release(c, o);
    parse_req("GET /v HTTP/1.1\r\nHost: x\r\nAccept-Language: fr\r\n\r\n");
    o = find(c, 3000, &f);
    assert_non_null(o);
    assert_memory_equal(f.e->data + f.e->head_len, "fr", 2);
    assert_true(f.key_len > f.base_len);
    cache_release(c, o);
    /* Vary: * is never stored */
    parse_res(
        "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nVary: *\r\nContent-Length: 0\r\n\r\n");
    struct policy_req p;
    policy_classify_request(&rfc, &req, &p);
    const char *why = NULL;
    assert_null(
        cache_fill_begin(c, &rfc, &req, &p, &res, wall0, wall0, 1000, 0, 1 << 20, NULL, &why));
    assert_string_equal(why, "vary-star");
    cache_destroy(c);
}

static void test_invalidate(void **state)
{
    (void)state;
    struct cache *c = cache_create(1 << 20, 4, 60000);
    char head[256];
    snprintf(
        head, sizeof(head),
        "HTTP/1.1 200 OK\r\nDate: %s\r\nCache-Control: max-age=60\r\nContent-Length: 1\r\n\r\n",
        date0);
    const char *reqs[] = {"GET /api/users/7 HTTP/1.1\r\nHost: x\r\n\r\n",
                          "GET /api/users/7?fields=a HTTP/1.1\r\nHost: x\r\n\r\n",
                          "GET /api/users/8 HTTP/1.1\r\nHost: x\r\n\r\n"};
    for (size_t i = 0; i < 3; i++) {
        parse_req(reqs[i]);
        store(c, head, "x", 1000, wall0);
    }
    cache_invalidate_uri(c, "x", 1, "http://x/api/users/7?y=1", 24);
    struct cache_found f;
    for (size_t i = 0; i < 3; i++) {
        parse_req(reqs[i]);
        struct store_obj *o = find(c, 2000, &f);
        if (i < 2)
            assert_null(o);
        else
            assert_non_null(o);
        cache_release(c, o);
    }
    /* another host's Location is ignored */
    cache_invalidate_uri(c, "x", 1, "http://evil/api/users/8", 23);
    parse_req(reqs[2]);
    struct store_obj *o = find(c, 2000, &f);
    assert_non_null(o);
    cache_release(c, o);
    /* a response fetched before the invalidation is refused at lookup */
    parse_req(reqs[0]);
    struct policy_req p;
    policy_classify_request(&rfc, &req, &p);
    struct buf key = BUF_INIT;
    cache_lookup(c, &rfc, &req, &p, 3000, &key, &f);
    uint64_t gen_before = f.path_gen;
    cache_invalidate_path(c, "x", 1, "/api/users/7", 12);
    parse_res(head);
    const char *why = NULL;
    struct cache_fill *fill = cache_fill_begin(c, &rfc, &req, &p, &res, wall0, wall0, 3000,
                                               gen_before, 1 << 20, NULL, &why);
    cache_fill_body(fill, "x", 1);
    cache_fill_end(c, fill, 3000);
    assert_null(find(c, 3000, &f));
    buf_deinit(&key);
    /* admin purge: exact path, then prefix */
    parse_req(reqs[1]);
    store(c, head, "x", 4000, wall0);
    assert_int_equal(cache_purge(c, "/api/users/8", 12, false), 1);
    assert_int_equal(cache_purge(c, "/api/", 5, true), 1);
    struct cache_stats st;
    cache_stats(c, &st);
    assert_int_equal(st.store.objects, 0);
    cache_destroy(c);
}

static void test_refresh_304_and_conditionals(void **state)
{
    (void)state;
    struct cache *c = cache_create(1 << 20, 4, 60000);
    char head[512];
    snprintf(head, sizeof(head),
             "HTTP/1.1 200 OK\r\nDate: %s\r\nCache-Control: max-age=10\r\nETag: \"a\"\r\n"
             "Last-Modified: Wed, 01 Jan 2020 00:00:00 GMT\r\nX-Test: one\r\n"
             "Content-Encoding: identity\r\nContent-Length: 4\r\n\r\n",
             date0);
    parse_req("GET /r HTTP/1.1\r\nHost: x\r\n\r\n");
    store(c, head, "body", 1000, wall0);
    struct cache_found f;
    struct store_obj *o = find(c, 20000, &f);
    assert_int_equal(f.use, POLICY_USE_REVALIDATE);
    char h304[512];
    char date1[HTTP_DATE_LEN + 1];
    http_date_format(wall0 + 19, date1);
    snprintf(h304, sizeof(h304),
             "HTTP/1.1 304 Not Modified\r\nDate: %s\r\nCache-Control: max-age=100\r\n"
             "ETag: \"b\"\r\nX-Test: two\r\nContent-Encoding: gzip\r\n\r\n",
             date1);
    parse_res(h304);
    struct policy_req p;
    policy_classify_request(&rfc, &req, &p);
    struct buf key = BUF_INIT;
    struct cache_found f2;
    cache_lookup(c, &rfc, &req, &p, 20000, &key, &f2);
    cache_release(c, f2.obj);
    struct store_obj *n = cache_refresh_304(c, &rfc, &req, &p, o, &res, wall0 + 19, wall0 + 19,
                                            20000, key.data, f2.key_len, f2.primary_len);
    assert_non_null(n);
    const struct cache_entry *e = n->payload;
    char *hh = strndup(e->data, e->head_len);
    assert_non_null(strstr(hh, "X-Test: two"));
    assert_null(strstr(hh, "X-Test: one"));
    assert_non_null(strstr(hh, "ETag: \"a\"")); /* representation fields are not updated */
    assert_non_null(strstr(hh, "Content-Encoding: identity"));
    assert_non_null(strstr(hh, "max-age=100"));
    free(hh);
    assert_memory_equal(e->data + e->head_len, "body", 4);
    assert_int_equal(e->fresh.lifetime_ms, 100000);
    cache_release(c, n);
    cache_release(c, o);
    o = find(c, 21000, &f);
    assert_int_equal(f.use, POLICY_USE_FRESH);
    /* conditionals */
    parse_req("GET /r HTTP/1.1\r\nHost: x\r\nIf-None-Match: W/\"a\", \"z\"\r\n\r\n");
    assert_true(cache_conditional_match(f.e, &req));
    parse_req("GET /r HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"z\"\r\n"
              "If-Modified-Since: Thu, 02 Jan 2020 00:00:00 GMT\r\n\r\n");
    assert_false(cache_conditional_match(f.e, &req)); /* INM present: IMS ignored */
    parse_req(
        "GET /r HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Thu, 02 Jan 2020 00:00:00 GMT\r\n\r\n");
    assert_true(cache_conditional_match(f.e, &req));
    parse_req(
        "GET /r HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Tue, 31 Dec 2019 00:00:00 GMT\r\n\r\n");
    assert_false(cache_conditional_match(f.e, &req));
    struct buf out = BUF_INIT;
    cache_write_304(f.e, 5000, CACHE_HIT, NULL, &out);
    buf_append(&out, "", 1);
    assert_non_null(strstr(out.data, "HTTP/1.1 304 Not Modified\r\n"));
    assert_non_null(strstr(out.data, "ETag: \"a\"\r\n"));
    assert_null(strstr(out.data, "X-Test"));
    assert_non_null(strstr(out.data, "Age: 5\r\nX-Cache: HIT\r\n\r\n"));
    buf_deinit(&out);
    cache_release(c, o);
    buf_deinit(&key);
    cache_destroy(c);
}

static void test_age_rules(void **state)
{
    (void)state;
    struct policy_req p;
    struct policy_fresh f;
    parse_req("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    policy_classify_request(&rfc, &req, &p);
    static const struct {
        const char *age;
        bool fresh;
    } cases[] = {
        {"Age: 10\r\n", true},     {"Age: abc\r\n", false},    {"Age: -1\r\n", false},
        {"Age: 10.0\r\n", false},  {"Age: 0, 0\r\n", false},   {"Age: 0\r\nAge: 0\r\n", false},
        {"Age: 0,7200\r\n", true}, {"Age: 7200,0\r\n", false}, {"Age: 10;a=b\r\n", false}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char head[256];
        snprintf(head, sizeof(head),
                 "HTTP/1.1 200 OK\r\nDate: %s\r\nCache-Control: max-age=3600\r\n%s"
                 "Content-Length: 0\r\n\r\n",
                 date0, cases[i].age);
        parse_res(head);
        assert_null(policy_storable(&rfc, &req, &p, &res, wall0, wall0, &f));
        bool fresh = f.initial_age_ms < f.lifetime_ms;
        if (fresh != cases[i].fresh)
            fail_msg("%s: fresh %d", cases[i].age, fresh);
    }
    /* override routes: 404 only with negative_ttl */
    struct policy_conf ov = {.ttl_ms = 60000, .override = true};
    parse_res("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    assert_string_equal(policy_storable(&ov, &req, &p, &res, wall0, wall0, &f), "status");
    ov.negative_ttl_ms = 5000;
    assert_null(policy_storable(&ov, &req, &p, &res, wall0, wall0, &f));
    assert_int_equal(f.lifetime_ms, 5000);
    parse_res("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_null(policy_storable(&ov, &req, &p, &res, wall0, wall0, &f));
    assert_int_equal(f.lifetime_ms, 60000);
    /* Surrogate-Control for us beats Cache-Control; other targets are ignored */
    char head[256];
    snprintf(head, sizeof(head),
             "HTTP/1.1 200 OK\r\nDate: %s\r\nCache-Control: no-store\r\n"
             "Surrogate-Control: max-age=100;apigate, max-age=5;other\r\nContent-Length: 0\r\n\r\n",
             date0);
    parse_res(head);
    assert_null(policy_storable(&rfc, &req, &p, &res, wall0, wall0, &f));
    assert_int_equal(f.lifetime_ms, 100000);
    snprintf(head, sizeof(head),
             "HTTP/1.1 200 OK\r\nDate: %s\r\nCache-Control: max-age=100\r\n"
             "Surrogate-Control: no-store\r\nContent-Length: 0\r\n\r\n",
             date0);
    parse_res(head);
    assert_string_equal(policy_storable(&rfc, &req, &p, &res, wall0, wall0, &f), "no-store");
}

static uint64_t tag_users_only(void *arg, const char *key, size_t key_len, size_t primary_len)
{
    (void)arg;
    (void)primary_len;
    return memmem(key, key_len, "/api/users/", 11) != NULL ? 42 : 0;
}

static struct buf flushed;

static void flush_into(void *arg, struct buf *out)
{
    (void)arg;
    buf_append(&flushed, buf_head(out), buf_pending(out));
    buf_reset(out);
}

static bool keep_tag(void *arg, const char *key, size_t key_len, size_t primary_len, uint64_t tag)
{
    (void)key;
    (void)key_len;
    (void)primary_len;
    return tag == *(const uint64_t *)arg;
}

/* Hand-over at reload: entries the exporter tags are inserted by the importer when it keeps the
 * tag, with their age carried through the wall clock (another process: another monotonic base);
 * an untagged entry and a refused tag stay out; a cut snapshot inserts only whole records. */
static void test_handoff(void **state)
{
    (void)state;
    struct cache *c = cache_create(1 << 20, 4, 60000);
    char head[512];
    snprintf(head, sizeof(head),
             "HTTP/1.1 200 OK\r\nDate: %s\r\nCache-Control: max-age=60\r\nContent-Length: "
             "5\r\n\r\n",
             date0);
    parse_req("GET /api/users/7 HTTP/1.1\r\nHost: example.org\r\n\r\n");
    store(c, head, "hello", 1000, wall0);
    parse_req("GET /api/items/1 HTTP/1.1\r\nHost: example.org\r\n\r\n");
    store(c, head, "items", 1000, wall0);
    struct buf snap = BUF_INIT;
    /* exported 10 s later (wall0 + 10 s) */
    assert_int_equal(cache_export(c, 11000, (uint64_t)wall0 * 1000 + 10000, tag_users_only, NULL,
                                  &snap, NULL, 0),
                     1);
    /* flushed shard by shard (every time: flush_at 0), the bytes are the same */
    struct buf rest = BUF_INIT;
    buf_init(&flushed);
    assert_int_equal(cache_export(c, 11000, (uint64_t)wall0 * 1000 + 10000, tag_users_only, NULL,
                                  &rest, flush_into, 0),
                     1);
    assert_int_equal(buf_pending(&rest), 0);
    assert_int_equal(buf_pending(&flushed), buf_pending(&snap));
    assert_memory_equal(buf_head(&flushed), buf_head(&snap), buf_pending(&snap));
    buf_deinit(&rest);
    buf_deinit(&flushed);
    cache_destroy(c);

    /* a new process: its monotonic clock reads 500 at wall0 + 12 s */
    uint64_t t42 = 42, t7 = 7;
    struct cache *n = cache_create(1 << 20, 4, 60000);
    assert_int_equal(cache_import(n, buf_head(&snap), buf_pending(&snap), keep_tag, &t7, 500,
                                  (uint64_t)wall0 * 1000 + 12000),
                     0);
    for (size_t cut = 0; cut < buf_pending(&snap); cut++)
        assert_int_equal(cache_import(n, buf_head(&snap), cut, keep_tag, &t42, 500,
                                      (uint64_t)wall0 * 1000 + 12000),
                         0);
    assert_int_equal(cache_import(n, buf_head(&snap), buf_pending(&snap), keep_tag, &t42, 500,
                                  (uint64_t)wall0 * 1000 + 12000),
                     1);
    struct cache_found f;
    parse_req("GET /api/users/7 HTTP/1.1\r\nHost: example.org\r\n\r\n");
    struct store_obj *o = find(n, 500, &f);
    assert_non_null(o);
    assert_int_equal(f.use, POLICY_USE_FRESH);
    assert_int_equal(f.age_ms / 1000, 12); /* stored at wall0, now wall0 + 12 s */
    assert_memory_equal(f.e->data + f.e->head_len, "hello", 5);
    cache_release(n, o);
    parse_req("GET /api/items/1 HTTP/1.1\r\nHost: example.org\r\n\r\n");
    assert_null(find(n, 500, &f));
    buf_deinit(&snap);
    cache_destroy(n);
}

/* Cache tags: the route's tag header is kept beside the entry (split on spaces and commas, every
 * line of it), never in the stored head; it survives serialization (the L2 blob); a soft purge by
 * tag makes the entry stale (served within stale-while-revalidate), a hard one removes it at the
 * next lookup, and an entry without the tag is untouched. */
static void test_tags(void **state)
{
    (void)state;
    struct cache *c = cache_create(1 << 20, 4, 60000);
    struct cache *c2 = cache_create(1 << 20, 4, 60000);
    struct policy_conf pc = rfc;
    pc.tag_header = "Surrogate-Key";
    parse_req("GET /t/1 HTTP/1.1\r\nHost: h\r\n\r\n");
    char head[512];
    snprintf(head, sizeof(head),
             "HTTP/1.1 200 OK\r\nDate: %s\r\nCache-Control: max-age=60, "
             "stale-while-revalidate=30\r\nSurrogate-Key: shop  a,b\r\nsurrogate-key: c\r\n"
             "Content-Length: 2\r\n\r\n",
             date0);
    parse_res(head);
    struct policy_req p;
    policy_classify_request(&pc, &req, &p);
    struct buf key = BUF_INIT;
    struct cache_found f;
    assert_int_equal(cache_lookup(c, &pc, &req, &p, 1000, &key, &f), 0);
    assert_null(f.obj);
    const char *why = "?";
    struct cache_fill *fill = cache_fill_begin(c, &pc, &req, &p, &res, wall0, wall0, 1000,
                                               f.path_gen, 1 << 20, NULL, &why);
    assert_non_null(fill);
    assert_int_equal(cache_fill_body(fill, "ok", 2), 0);
    struct store_obj *o = cache_fill_end_ref(c, fill, 1000);
    assert_non_null(o);
    const struct cache_entry *e = o->payload;
    assert_string_equal(e->tags, "shop a b c");
    char *h = strndup(e->data, e->head_len);
    assert_null(strstr(h, "urrogate-"));
    free(h);
    assert_true(cache_entry_has_tag(e, "a", 1));
    assert_true(cache_entry_has_tag(e, "shop", 4));
    assert_false(cache_entry_has_tag(e, "sho", 3));
    assert_false(cache_entry_has_tag(e, "a b", 3));
    struct buf blob = BUF_INIT;
    cache_entry_serialize(e, 1000, (uint64_t)wall0 * 1000, &blob);
    cache_release(c, o);
    struct store_obj *o2 =
        cache_insert_serialized(c2, blob.data, blob.len, key.data, key.len, f.primary_len,
                                f.path_gen, 1000, (uint64_t)wall0 * 1000);
    assert_non_null(o2);
    assert_string_equal(((const struct cache_entry *)o2->payload)->tags, "shop a b c");
    cache_release(c2, o2);
    assert_int_equal(cache_purge_tag(c2, "zzz", 3, false), 0);
    /* soft: stale, served within stale-while-revalidate */
    assert_int_equal(cache_purge_tag(c, "b", 1, true), 1);
    assert_int_equal(cache_lookup(c, &pc, &req, &p, 2000, &key, &f), 0);
    assert_non_null(f.obj);
    assert_int_equal(f.use, POLICY_USE_STALE_SWR);
    cache_release(c, f.obj);
    /* hard: gone */
    assert_int_equal(cache_purge_tag(c, "shop", 4, false), 1);
    assert_int_equal(cache_lookup(c, &pc, &req, &p, 2000, &key, &f), 0);
    assert_null(f.obj);
    /* the other cache's copy is untouched */
    assert_int_equal(cache_lookup(c2, &pc, &req, &p, 2000, &key, &f), 0);
    assert_non_null(f.obj);
    assert_int_equal(f.use, POLICY_USE_FRESH);
    cache_release(c2, f.obj);
    buf_deinit(&blob);
    buf_deinit(&key);
    cache_destroy(c);
    cache_destroy(c2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_fill_and_hit, setup),
        cmocka_unit_test_setup(test_vary, setup),
        cmocka_unit_test_setup(test_invalidate, setup),
        cmocka_unit_test_setup(test_refresh_304_and_conditionals, setup),
        cmocka_unit_test_setup(test_age_rules, setup),
        cmocka_unit_test_setup(test_handoff, setup),
        cmocka_unit_test_setup(test_tags, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
