/* The field-by-field request head (HTTP/2): what it builds is what the h1 parser builds from the
 * same request, and every check of the h1 parser that applies, plus RFC 9113's own, refuses the
 * same inputs (a table: fields in, expected error out). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"
#include "http/h1parse.h"
#include "http/reqhead.h"

#define MAXH 8

/* Builds a head from "name\0value" pairs given as a NULL-terminated list of "name: value"
 * strings (split at the first ": " after the first byte, so ":path: /x" works). */
static int build(struct arena *a, struct h1_request *req, struct h1_header *hdrs,
                 const char *const *fields, bool body, const struct h1_limits *lim)
{
    arena_reset(a);
    struct reqhead *h = reqhead_begin(a, hdrs, MAXH, lim);
    assert_non_null(h);
    for (size_t i = 0; fields[i] != NULL; i++) {
        const char *f = fields[i];
        const char *sep = strstr(f + 1, ": ");
        assert_non_null(sep);
        reqhead_field(h, f, (size_t)(sep - f), sep + 2, strlen(sep + 2));
    }
    return reqhead_finish(h, req, body);
}

static const char *hdr(const struct h1_request *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strlen(name) == r->headers[i].name_len &&
            memcmp(r->headers[i].name, name, r->headers[i].name_len) == 0)
            return r->headers[i].value;
    return NULL;
}

static void test_good(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 512, 1u << 16);
    struct h1_request r;
    struct h1_header hv[MAXH];
    const char *get[] = {":method: GET", ":scheme: https", ":authority: api.example:8443",
                         ":path: /api/users/7?x=1", "cookie: a=1", "accept: */*",
                         "cookie: b=2", "te: trailers", NULL};
    assert_int_equal(build(&a, &r, hv, get, false, NULL), 0);
    assert_int_equal(r.method_id, H1_M_GET);
    assert_int_equal(r.minor_version, 1);
    assert_true(r.keep_alive);
    assert_int_equal(r.body, H1_BODY_NONE);
    assert_int_equal(r.path_len, 12);
    assert_memory_equal(r.path, "/api/users/7", 12);
    assert_int_equal(r.query_len, 3);
    assert_memory_equal(r.host, "api.example:8443", r.host_len);
    assert_string_equal(hdr(&r, "host"), "api.example:8443"); // :authority becomes Host
    assert_string_equal(hdr(&r, "cookie"), "a=1; b=2");        // RFC 9113 §8.2.3
    assert_string_equal(hdr(&r, "accept"), "*/*");

    /* a body: Content-Length frames it, else chunked (the session frames DATA so) */
    const char *post[] = {":method: POST", ":scheme: http", ":path: /echo", "host: h",
                          "content-length: 5", NULL};
    assert_int_equal(build(&a, &r, hv, post, true, NULL), 0);
    assert_int_equal(r.body, H1_BODY_LENGTH);
    assert_int_equal(r.content_length, 5);
    assert_memory_equal(r.host, "h", 1);
    const char *chunk[] = {":method: PUT", ":scheme: http", ":path: /x", ":authority: h", NULL};
    assert_int_equal(build(&a, &r, hv, chunk, true, NULL), 0);
    assert_int_equal(r.body, H1_BODY_CHUNKED);
    /* the same Host beside :authority (letters fold) */
    const char *both[] = {":method: GET", ":scheme: http", ":path: /", ":authority: H.example",
                          "host: h.EXAMPLE", NULL};
    assert_int_equal(build(&a, &r, hv, both, false, NULL), 0);
    /* OPTIONS * and CONNECT (the request layer answers 501 to the latter) */
    const char *opt[] = {":method: OPTIONS", ":scheme: http", ":path: *", ":authority: h", NULL};
    assert_int_equal(build(&a, &r, hv, opt, false, NULL), 0);
    const char *conn[] = {":method: CONNECT", ":authority: h:443", NULL};
    assert_int_equal(build(&a, &r, hv, conn, false, NULL), 0);
    assert_int_equal(r.method_id, H1_M_CONNECT);
    assert_null(r.protocol);
    /* RFC 8441 extended CONNECT: routed by its :path, the stream's bytes are no body */
    const char *ws[] = {":method: CONNECT", ":protocol: websocket", ":scheme: https",
                        ":path: /ws/chat?room=1", ":authority: h", "sec-websocket-version: 13",
                        NULL};
    assert_int_equal(build(&a, &r, hv, ws, true, NULL), 0);
    assert_int_equal(r.method_id, H1_M_CONNECT);
    assert_int_equal(r.protocol_len, 9);
    assert_memory_equal(r.protocol, "websocket", 9);
    assert_int_equal(r.path_len, 8);
    assert_memory_equal(r.path, "/ws/chat", 8);
    assert_int_equal(r.body, H1_BODY_NONE);
    assert_memory_equal(r.host, "h", 1);
    arena_deinit(&a);
}

struct bad {
    const char *why;
    const char *fields[12];
    bool body;
    enum h1_err err;
};

static void test_refused(void **state)
{
    (void)state;
#define REQ ":method: GET", ":scheme: http", ":path: /", ":authority: h"
    static const struct bad cases[] = {
        {"no :method", {":scheme: http", ":path: /", ":authority: h"}, false, H1_ERR_PSEUDO},
        {"no :path", {":method: GET", ":scheme: http", ":authority: h"}, false, H1_ERR_PSEUDO},
        {"no :scheme", {":method: GET", ":path: /", ":authority: h"}, false, H1_ERR_PSEUDO},
        {"twice :path", {REQ, ":path: /b"}, false, H1_ERR_PSEUDO},
        {"pseudo after a field", {":method: GET", ":scheme: http", "a: b", ":path: /",
                                  ":authority: h"}, false, H1_ERR_PSEUDO},
        {"unknown pseudo", {REQ, ":protocol: websocket"}, false, H1_ERR_PSEUDO},
        {"response pseudo", {REQ, ":status: 200"}, false, H1_ERR_PSEUDO},
        {"CONNECT with :path", {":method: CONNECT", ":authority: h:1", ":path: /"}, false,
         H1_ERR_PSEUDO},
        {":protocol without :path", {":method: CONNECT", ":protocol: websocket",
                                     ":scheme: http", ":authority: h"}, true, H1_ERR_PSEUDO},
        {":protocol on POST", {":method: POST", ":protocol: websocket", ":scheme: http",
                               ":path: /", ":authority: h"}, true, H1_ERR_PSEUDO},
        {"empty :protocol", {":method: CONNECT", ":protocol: ", ":scheme: http", ":path: /",
                             ":authority: h"}, true, H1_ERR_PSEUDO},
        {"extended CONNECT with a body", {":method: CONNECT", ":protocol: websocket",
                                          ":scheme: http", ":path: /", ":authority: h",
                                          "content-length: 3"}, true, H1_ERR_CONTENT_LENGTH},
        {"bad method", {":method: GE T", ":scheme: http", ":path: /", ":authority: h"}, false,
         H1_ERR_METHOD},
        {"absolute :path", {":method: GET", ":scheme: http", ":path: http://x/", ":authority: h"},
         false, H1_ERR_TARGET},
        {"* not OPTIONS", {":method: GET", ":scheme: http", ":path: *", ":authority: h"}, false,
         H1_ERR_TARGET},
        {"space in :path", {":method: GET", ":scheme: http", ":path: /a b", ":authority: h"},
         false, H1_ERR_TARGET},
        {"fragment in :path", {":method: GET", ":scheme: http", ":path: /a#b", ":authority: h"},
         false, H1_ERR_TARGET},
        {"userinfo in :authority", {":method: GET", ":scheme: http", ":path: /",
                                    ":authority: u@h"}, false, H1_ERR_HOST},
        {"Host differs", {REQ, "host: other"}, false, H1_ERR_HOST},
        {"two Hosts", {":method: GET", ":scheme: http", ":path: /", "host: a", "host: a"}, false,
         H1_ERR_HOST},
        {"no host at all", {":method: GET", ":scheme: http", ":path: /"}, false, H1_ERR_HOST},
        {"upper-case name", {REQ, "Accept: x"}, false, H1_ERR_HEADER_NAME},
        {"space in name", {REQ, "a b: x"}, false, H1_ERR_HEADER_NAME},
        {"CR in value", {REQ, "a: x\ry"}, false, H1_ERR_HEADER_VALUE},
        {"LF in value", {REQ, "a: x\nfoo: y"}, false, H1_ERR_HEADER_VALUE},
        {"leading space", {REQ, "a:  x"}, false, H1_ERR_HEADER_VALUE},
        {"trailing tab", {REQ, "a: x\t"}, false, H1_ERR_HEADER_VALUE},
        {"connection", {REQ, "connection: close"}, false, H1_ERR_CONN_FIELD},
        {"keep-alive", {REQ, "keep-alive: 5"}, false, H1_ERR_CONN_FIELD},
        {"proxy-connection", {REQ, "proxy-connection: x"}, false, H1_ERR_CONN_FIELD},
        {"transfer-encoding", {REQ, "transfer-encoding: chunked"}, true, H1_ERR_CONN_FIELD},
        {"upgrade", {REQ, "upgrade: websocket"}, false, H1_ERR_CONN_FIELD},
        {"te gzip", {REQ, "te: gzip"}, false, H1_ERR_CONN_FIELD},
        {"bad content-length", {REQ, "content-length: 5x"}, true, H1_ERR_CONTENT_LENGTH},
        {"two content-lengths", {REQ, "content-length: 5", "content-length: 6"}, true,
         H1_ERR_CONTENT_LENGTH},
        {"content-length without body", {REQ, "content-length: 5"}, false, H1_ERR_CONTENT_LENGTH},
        {"too many fields", {REQ, "a: 1", "b: 1", "c: 1", "d: 1", "e: 1", "f: 1"}, false,
         H1_ERR_TOO_MANY_HEADERS},
    };
#undef REQ
    struct arena a;
    arena_init(&a, 512, 1u << 16);
    struct h1_header hv[MAXH];
    struct h1_limits lim = {.max_headers = 5};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct h1_request r;
        int rc = build(&a, &r, hv, cases[i].fields, cases[i].body, &lim);
        if (rc != -1 || r.err != cases[i].err)
            fail_msg("%s: rc %d err %d (%s), want err %d", cases[i].why, rc, r.err,
                     h1_err_text(r.err), cases[i].err);
    }
    /* size limits: a :path over the line limit (414), names and values over the head (431) */
    struct h1_request r;
    char longp[64];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[0] = '/';
    longp[63] = '\0';
    char pf[80];
    snprintf(pf, sizeof(pf), ":path: %s", longp);
    const char *lp[] = {":method: GET", ":scheme: http", pf, ":authority: h", NULL};
    struct h1_limits small = {.max_request_line = 32, .max_head = 4096};
    assert_int_equal(build(&a, &r, hv, lp, false, &small), -1);
    assert_int_equal(r.err, H1_ERR_URI_TOO_LONG);
    struct h1_limits tiny = {.max_head = 60};
    assert_int_equal(build(&a, &r, hv, lp, false, &tiny), -1);
    assert_int_equal(r.err, H1_ERR_HEAD_TOO_LARGE);
    arena_deinit(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
