/* Request and response head parser: tables of malformed heads with the status they must get,
 * valid heads checked field by field. Every input is parsed whole and one byte at a time (the two
 * must agree), and always ends right before a PROT_NONE page so any over-read crashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sys/mman.h>
#include <unistd.h>

#include "http/chunked.h"
#include "http/h1parse.h"
#include "http/headers.h"

/* ---- guard page harness ---- */

static char *guard_base;
static size_t guard_size; /* usable bytes before the guard page */

static void guard_setup(size_t need)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t usable = (need + page - 1) / page * page;
    if (guard_base && guard_size >= usable)
        return;
    if (guard_base)
        munmap(guard_base, guard_size + page);
    guard_base = mmap(NULL, usable + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);
    assert_true(guard_base != MAP_FAILED);
    assert_int_equal(mprotect(guard_base + usable, page, PROT_NONE), 0);
    guard_size = usable;
}

/* Copies <s>[0,<n>) so that it ends exactly at the guard page; returns the copy. */
static const char *guard_place(const char *s, size_t n)
{
    guard_setup(n ? n : 1);
    char *p = guard_base + guard_size - n;
    memcpy(p, s, n);
    return p;
}

static void guard_free(void)
{
    if (guard_base)
        munmap(guard_base, guard_size + (size_t)sysconf(_SC_PAGESIZE));
    guard_base = NULL;
    guard_size = 0;
}

#define MAXH 64
static struct h1_header hdrs[MAXH];

static int req_whole(const char *s, size_t n, struct h1_request *r, const struct h1_limits *lim)
{
    const char *p = guard_place(s, n);
    return h1_parse_request(p, n, r, hdrs, MAXH, lim);
}

/* Feeds prefixes of growing length, each ending at the guard page, like a connection receiving
 * one byte per read. Returns the first non -2 result (or -2 if the whole input is incomplete). For
 * long inputs the middle is sampled in larger steps to keep the test fast. */
static int req_bytewise(const char *s, size_t n, struct h1_request *r, const struct h1_limits *lim)
{
    int ret = -2;
    for (size_t i = 0; i <= n;) {
        const char *p = guard_place(s, i);
        ret = h1_parse_request(p, i, r, hdrs, MAXH, lim);
        if (ret != -2)
            return ret;
        if (n > 4096 && i > 2048 && i + 2048 < n)
            i += 61;
        else
            i++;
    }
    return ret;
}

static int res_whole(const char *s, size_t n, struct h1_response *r, bool head)
{
    const char *p = guard_place(s, n);
    return h1_parse_response(p, n, r, hdrs, MAXH, NULL, head);
}

static int res_bytewise(const char *s, size_t n, struct h1_response *r, bool head)
{
    int ret = -2;
    for (size_t i = 0; i <= n; i++) {
        const char *p = guard_place(s, i);
        ret = h1_parse_response(p, i, r, hdrs, MAXH, NULL, head);
        if (ret != -2)
            return ret;
    }
    return ret;
}

/* ---- malformed requests ---- */

struct bad_case {
    const char *name;
    const char *in;
    int status;
    enum h1_err err;
};

/* The smuggling set of ANCHORS.md (nginx rejects all, python http.server accepts 11), plus more. */
static const struct bad_case bad_requests[] = {
    /* smuggling set */
    {"CL+TE",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
     400, H1_ERR_TE_AND_CL},
    {"TE+CL",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
     400, H1_ERR_TE_AND_CL},
    {"dup CL differing",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
     400, H1_ERR_CONTENT_LENGTH},
    {"CL list differing", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", 400,
     H1_ERR_CONTENT_LENGTH},
    {"TE gzip only", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
     H1_ERR_TE_UNSUPPORTED},
    {"TE chunked, gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
     501, H1_ERR_TE_UNSUPPORTED},
    {"TE xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501,
     H1_ERR_TE_UNSUPPORTED},
    {"space before colon", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", 400,
     H1_ERR_HEADER_NAME},
    {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400, H1_ERR_OBS_FOLD},
    {"obs-fold tab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", 400, H1_ERR_OBS_FOLD},
    {"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n", 400, H1_ERR_HEADER_VALUE},
    {"signed CL +", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400,
     H1_ERR_CONTENT_LENGTH},
    {"signed CL -", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n", 400,
     H1_ERR_CONTENT_LENGTH},
    {"bad method token", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_METHOD},
    {"missing Host", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400, H1_ERR_HOST},
    {"duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, H1_ERR_HOST},
    /* (oversize header and chunk-size overflow are separate tests below) */

    /* Content-Length */
    {"CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400,
     H1_ERR_CONTENT_LENGTH},
    {"CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400,
     H1_ERR_CONTENT_LENGTH},
    {"CL inner space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", 400,
     H1_ERR_CONTENT_LENGTH},
    {"CL overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551617\r\n\r\n",
     400, H1_ERR_CONTENT_LENGTH},
    {"CL over int64", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n",
     400, H1_ERR_CONTENT_LENGTH},
    {"CL empty list element", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n", 400,
     H1_ERR_CONTENT_LENGTH},
    {"CL decimal point", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5.0\r\n\r\n", 400,
     H1_ERR_CONTENT_LENGTH},
    /* Transfer-Encoding */
    {"TE chunked twice",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
     400, H1_ERR_TE_BAD},
    {"TE chunked twice lines",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
     "Transfer-Encoding: chunked\r\n\r\n",
     400, H1_ERR_TE_BAD},
    {"TE gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     501, H1_ERR_TE_UNSUPPORTED},
    {"TE empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", 400, H1_ERR_TE_BAD},
    {"TE empty element", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n", 400,
     H1_ERR_TE_BAD},
    {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
     H1_ERR_TE_HTTP10},
    {"TE with params", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", 501,
     H1_ERR_TE_UNSUPPORTED},
    {"TE vertical tab", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \vchunked\r\n\r\n", 400,
     H1_ERR_HEADER_VALUE},
    {"TE name with space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400,
     H1_ERR_HEADER_NAME},
    /* line structure */
    {"bare CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400, H1_ERR_LINE},
    {"bare CR line end", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400, H1_ERR_LINE},
    {"bare CR request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400, H1_ERR_LINE},
    {"bare CR head end", "GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400, H1_ERR_LINE},
    {"bare CR leading", "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_LINE},
    {"no colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n", 400, H1_ERR_LINE},
    {"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400, H1_ERR_HEADER_NAME},
    {"name with slash", "GET / HTTP/1.1\r\nHost: a\r\nX/A: b\r\n\r\n", 400, H1_ERR_HEADER_NAME},
    {"name with NUL", "GET / HTTP/1.1\r\nHost: a\r\nX\0A: b\r\n\r\n", 400, H1_ERR_HEADER_NAME},
    {"name with tab before colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n", 400,
     H1_ERR_HEADER_NAME},
    {"name with high byte", "GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: b\r\n\r\n", 400,
     H1_ERR_HEADER_NAME},
    {"space first header", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, H1_ERR_LINE},
    {"CTL in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01\r\n\r\n", 400, H1_ERR_HEADER_VALUE},
    {"DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7f\r\n\r\n", 400, H1_ERR_HEADER_VALUE},
    {"ESC in long value",
     "GET / HTTP/1.1\r\nHost: a\r\nX-A: 0123456789abcdef0123456789abcdef\x1b"
     "0123456789abcdef\r\n\r\n",
     400, H1_ERR_HEADER_VALUE},
    {"NUL in long value",
     "GET / HTTP/1.1\r\nHost: a\r\nX-A: 0123456789abcdef0123456789abcdef\0\r\n\r\n", 400,
     H1_ERR_HEADER_VALUE},
    /* method */
    {"empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_METHOD},
    {"method with tab", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_METHOD},
    {"method NUL", "GE\0T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_METHOD},
    {"method only", "GET\r\n\r\n", 400, H1_ERR_METHOD},
    {"method paren", "GET(x) / HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_METHOD},
    /* target */
    {"double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_TARGET},
    {"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_LINE},
    {"tab in target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_TARGET},
    {"NUL in target", "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_TARGET},
    {"DEL in target", "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_TARGET},
    {"fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_TARGET},
    {"relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_TARGET},
    {"asterisk for GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_TARGET},
    {"absolute userinfo", "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_TARGET},
    {"absolute no authority", "GET http:/// HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_TARGET},
    {"absolute no slashes", "GET http:a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_TARGET},
    {"CONNECT origin form", "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_TARGET},
    {"CONNECT no port", "CONNECT a.com HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_TARGET},
    {"CONNECT bad port", "CONNECT a.com:8x HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_TARGET},
    /* version */
    {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, H1_ERR_VERSION},
    {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, H1_ERR_VERSION},
    {"HTTP/0.9", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505, H1_ERR_VERSION},
    {"HTTP/3.0", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505, H1_ERR_VERSION},
    {"version lowercase", "GET / http/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_LINE},
    {"version garbage", "GET / HTTP/x.y\r\nHost: a\r\n\r\n", 400, H1_ERR_LINE},
    {"version two digits", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400, H1_ERR_LINE},
    {"version 10.0", "GET / HTTP/10.0\r\nHost: a\r\n\r\n", 400, H1_ERR_LINE},
    {"version trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, H1_ERR_LINE},
    {"no version", "GET /\r\nHost: a\r\n\r\n", 400, H1_ERR_LINE},
    {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, H1_ERR_VERSION},
    /* Host */
    {"Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, H1_ERR_HOST},
    {"Host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, H1_ERR_HOST},
    {"Host with at", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, H1_ERR_HOST},
    {"Host dup case", "GET / HTTP/1.1\r\nhost: a\r\nHOST: a\r\n\r\n", 400, H1_ERR_HOST},
    {"Host missing absolute", "GET http://a/ HTTP/1.1\r\n\r\n", 400, H1_ERR_HOST},
    {"Host dup HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400, H1_ERR_HOST},
    {"Host stray bracket", "GET / HTTP/1.1\r\nHost: a]b\r\n\r\n", 400, H1_ERR_HOST},
    {"Host open bracket", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, H1_ERR_HOST},
    {"Host empty brackets", "GET / HTTP/1.1\r\nHost: []\r\n\r\n", 400, H1_ERR_HOST},
    {"Host port only", "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", 400, H1_ERR_HOST},
    {"Host bad port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400, H1_ERR_HOST},
    {"Host two ports", "GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", 400, H1_ERR_HOST},
    {"Host bad pct", "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400, H1_ERR_HOST},
    {"Host with comma list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400, H1_ERR_HOST},
    {"absolute bad port", "GET http://a:b/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, H1_ERR_TARGET},
    {"absolute bracket junk", "GET http://[::1]x/ HTTP/1.1\r\nHost: a\r\n\r\n", 400,
     H1_ERR_TARGET},
};

static void check_bad(const struct bad_case *c, size_t n)
{
    struct h1_request r;
    int w = req_whole(c->in, n, &r, NULL);
    enum h1_err we = r.err;
    int b = req_bytewise(c->in, n, &r, NULL);
    if (w != -1 || we != c->err || b != -1 || r.err != c->err ||
        h1_err_status(we) != c->status)
        fail_msg("%s: whole=%d err=%d (%s) bytewise=%d err=%d, want -1 err=%d status %d", c->name,
                 w, we, h1_err_text(we), b, r.err, c->err, c->status);
}

static void test_bad_requests(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]); i++) {
        const struct bad_case *c = &bad_requests[i];
        /* length from the literal's end, because some inputs contain NUL */
        size_t n = strlen(c->in);
        const char *nul = NULL;
        if (strstr(c->name, "NUL")) {
            /* inputs with an embedded NUL: measure up to the terminating CRLFCRLF */
            nul = c->in + n + 1;
            const char *e = strstr(nul, "\r\n\r\n");
            n = (size_t)(e - c->in) + 4;
        }
        check_bad(c, n);
    }
}

/* The 15-case smuggling set of ANCHORS.md as one list, heads and (for the chunk-size case) body:
 * nginx rejects all 15, Python's http.server accepts 11. We must reject every one, whole and
 * byte by byte. */
static void test_smuggling_set(void **state)
{
    (void)state;
    static char big[40100];
    size_t bl = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
    memset(big + bl, 'x', 40000);
    memcpy(big + bl + 40000, "\r\n\r\n", 5);
    static const char nul_case[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
    static const struct {
        const char *name, *in;
        int status; /* 0: the head is fine, the chunked body must fail */
        size_t len; /* 0: strlen */
    } set[] = {
        {"CL then TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, 0},
        {"TE then CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                       "Content-Length: 4\r\n\r\n0\r\n\r\n", 400, 0},
        {"duplicate CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                         "Content-Length: 4\r\n\r\nabcd", 400, 0},
        {"TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501, 0},
        {"TE chunked, identity", "POST / HTTP/1.1\r\nHost: a\r\n"
                                 "Transfer-Encoding: chunked, identity\r\n\r\n", 501, 0},
        {"space before colon", "POST / HTTP/1.1\r\nHost: a\r\n"
                               "Transfer-Encoding : chunked\r\n\r\n", 400, 0},
        {"obs-fold TE", "POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\n"
                        "\r\n", 400, 0},
        {"chunk-size overflow", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "10000000000000001\r\nx\r\n0\r\n\r\n", 0, 0},
        {"NUL in value", nul_case, 400, sizeof(nul_case) - 1},
        {"signed CL +", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd", 400, 0},
        {"signed CL -", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, 0},
        {"bad method token", "G,T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
        {"missing Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, 0},
        {"duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, 0},
        {"oversize header", big, 431, 0},
    };
    assert_int_equal(sizeof(set) / sizeof(set[0]), 15);
    int rejected = 0;
    for (size_t i = 0; i < 15; i++) {
        size_t n = set[i].len ? set[i].len : strlen(set[i].in);
        struct h1_request r;
        int w = req_whole(set[i].in, n, &r, NULL);
        int ws = w == -1 ? h1_err_status(r.err) : 0;
        int b = req_bytewise(set[i].in, n, &r, NULL);
        int bs = b == -1 ? h1_err_status(r.err) : 0;
        if (set[i].status) {
            if (w != -1 || b != -1 || ws != set[i].status || bs != set[i].status)
                fail_msg("%s: whole %d/%d bytewise %d/%d", set[i].name, w, ws, b, bs);
        } else {
            assert_true(w > 0 && r.body == H1_BODY_CHUNKED);
            char out[64];
            size_t ol;
            if (h1_chunked_decode_all(set[i].in + w, n - (size_t)w, out, sizeof(out), &ol) != -1)
                fail_msg("%s: body accepted", set[i].name);
        }
        rejected++;
    }
    assert_int_equal(rejected, 15);
}

/* ---- limits ---- */

static char *make_repeat(const char *prefix, char ch, size_t count, const char *suffix, size_t *n)
{
    size_t pl = strlen(prefix), sl = strlen(suffix);
    char *s = malloc(pl + count + sl + 1);
    memcpy(s, prefix, pl);
    memset(s + pl, ch, count);
    memcpy(s + pl + count, suffix, sl + 1);
    *n = pl + count + sl;
    return s;
}

static void test_oversize_header(void **state)
{
    (void)state;
    struct h1_request r;
    size_t n;
    /* smuggling set: one 40 KiB header against the 32 KiB default head limit */
    char *s = make_repeat("GET / HTTP/1.1\r\nHost: a\r\nX-Big: ", 'x', 40000, "\r\n\r\n", &n);
    assert_int_equal(req_whole(s, n, &r, NULL), -1);
    assert_int_equal(r.err, H1_ERR_HEAD_TOO_LARGE);
    assert_int_equal(h1_err_status(r.err), 431);
    assert_int_equal(req_bytewise(s, n, &r, NULL), -1);
    assert_int_equal(r.err, H1_ERR_HEAD_TOO_LARGE);
    /* an incomplete over-limit head fails at once: no waiting for the end */
    size_t cut = 32768 + 10;
    assert_int_equal(req_whole(s, cut, &r, NULL), -1);
    assert_int_equal(r.err, H1_ERR_HEAD_TOO_LARGE);
    /* one byte under the limit is just incomplete */
    assert_int_equal(req_whole(s, 32767, &r, NULL), -2);
    free(s);

    /* exactly at the limit is accepted */
    struct h1_limits lim = {0, 64, 0};
    const char *ok = "GET / HTTP/1.1\r\nHost: a\r\nX: 01234567890123456789012345678901\r\n\r\n";
    assert_int_equal(strlen(ok), 64);
    assert_int_equal(req_whole(ok, 64, &r, &lim), 64);
    assert_int_equal(req_bytewise(ok, 64, &r, &lim), 64);
    lim.max_head = 63;
    assert_int_equal(req_whole(ok, 64, &r, &lim), -1);
    assert_int_equal(r.err, H1_ERR_HEAD_TOO_LARGE);
    assert_int_equal(req_bytewise(ok, 64, &r, &lim), -1);
    assert_int_equal(r.err, H1_ERR_HEAD_TOO_LARGE);
}

static void test_request_line_limit(void **state)
{
    (void)state;
    struct h1_request r;
    struct h1_limits lim = {20, 0, 0};
    /* "GET /0123456 HTTP/1.1" is 21 bytes */
    const char *l21 = "GET /0123456 HTTP/1.1\r\nHost: a\r\n\r\n";
    const char *l20 = "GET /012345 HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(req_whole(l20, strlen(l20), &r, &lim), (int)strlen(l20));
    assert_int_equal(req_bytewise(l20, strlen(l20), &r, &lim), (int)strlen(l20));
    assert_int_equal(req_whole(l21, strlen(l21), &r, &lim), -1);
    assert_int_equal(r.err, H1_ERR_URI_TOO_LONG);
    assert_int_equal(h1_err_status(r.err), 414);
    assert_int_equal(req_bytewise(l21, strlen(l21), &r, &lim), -1);
    assert_int_equal(r.err, H1_ERR_URI_TOO_LONG);
    /* LF-only ending: the limit counts the line without its terminator */
    const char *lf20 = "GET /012345 HTTP/1.1\nHost: a\n\n";
    assert_int_equal(req_bytewise(lf20, strlen(lf20), &r, &lim), (int)strlen(lf20));

    /* default 8 KiB: a 10 KiB target fails before the line ends */
    size_t n;
    char *s = make_repeat("GET /", 'a', 10000, " HTTP/1.1\r\nHost: a\r\n\r\n", &n);
    assert_int_equal(req_whole(s, 8200, &r, NULL), -1);
    assert_int_equal(r.err, H1_ERR_URI_TOO_LONG);
    assert_int_equal(req_bytewise(s, n, &r, NULL), -1);
    assert_int_equal(r.err, H1_ERR_URI_TOO_LONG);
    free(s);
}

static void test_too_many_headers(void **state)
{
    (void)state;
    struct h1_request r;
    char s[4096];
    size_t n = (size_t)snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(s + n, sizeof(s) - n, "X-%d: v\r\n", i);
    n += (size_t)snprintf(s + n, sizeof(s) - n, "\r\n");
    struct h1_limits lim = {0, 0, 21};
    assert_int_equal(req_whole(s, n, &r, &lim), (int)n);
    assert_int_equal(r.nheaders, 21);
    lim.max_headers = 20;
    assert_int_equal(req_whole(s, n, &r, &lim), -1);
    assert_int_equal(r.err, H1_ERR_TOO_MANY_HEADERS);
    assert_int_equal(h1_err_status(r.err), 431);
    assert_int_equal(req_bytewise(s, n, &r, &lim), -1);
    assert_int_equal(r.err, H1_ERR_TOO_MANY_HEADERS);
    /* the caller's array bounds it too, without overflowing it */
    struct h1_header small[3];
    const char *p = guard_place(s, n);
    assert_int_equal(h1_parse_request(p, n, &r, small, 3, NULL), -1);
    assert_int_equal(r.err, H1_ERR_TOO_MANY_HEADERS);
    /* an incomplete head that already has too many lines fails at once */
    assert_int_equal(h1_parse_request(p, n - 2, &r, small, 3, NULL), -1);
}

/* ---- valid requests ---- */

static bool slice_is(const char *p, size_t n, const char *want)
{
    return p && strlen(want) == n && memcmp(p, want, n) == 0;
}
#define assert_slice(p, n, want)                                                             \
    do {                                                                                     \
        if (!slice_is((p), (n), (want)))                                                     \
            fail_msg("slice %.*s != %s", (int)(n), (p) ? (p) : "(null)", (want));            \
    } while (0)

/* Parses whole and byte by byte, both must return the full length; leaves the whole parse in r. */
static void parse_ok(const char *s, struct h1_request *r)
{
    size_t n = strlen(s);
    int b = req_bytewise(s, n, r, NULL);
    if (b != (int)n)
        fail_msg("bytewise %d != %zu (err %s) for %s", b, n, h1_err_text(r->err), s);
    int w = req_whole(s, n, r, NULL);
    if (w != (int)n)
        fail_msg("whole %d != %zu (err %s) for %s", w, n, h1_err_text(r->err), s);
}

static void test_simple_get(void **state)
{
    (void)state;
    struct h1_request r;
    const char *s = "GET /api/users?id=7&x=1 HTTP/1.1\r\n"
                    "Host: example.com:8080\r\n"
                    "User-Agent: curl/8.0\r\n"
                    "Accept:*/*\r\n"
                    "X-Spaces: \t a b \t \r\n"
                    "X-Empty:\r\n"
                    "\r\n";
    parse_ok(s, &r);
    assert_slice(r.method, r.method_len, "GET");
    assert_int_equal(r.method_id, H1_M_GET);
    assert_slice(r.target, r.target_len, "/api/users?id=7&x=1");
    assert_slice(r.path, r.path_len, "/api/users");
    assert_slice(r.query, r.query_len, "id=7&x=1");
    assert_int_equal(r.minor_version, 1);
    assert_int_equal(r.nheaders, 5);
    assert_slice(r.headers[0].name, r.headers[0].name_len, "Host");
    assert_slice(r.headers[0].value, r.headers[0].value_len, "example.com:8080");
    assert_slice(r.headers[2].name, r.headers[2].name_len, "Accept");
    assert_slice(r.headers[2].value, r.headers[2].value_len, "*/*");
    assert_slice(r.headers[3].value, r.headers[3].value_len, "a b");
    assert_int_equal(r.headers[4].value_len, 0);
    assert_slice(r.host, r.host_len, "example.com:8080");
    assert_int_equal(r.body, H1_BODY_NONE);
    assert_true(r.keep_alive);
    assert_false(r.expect_continue);
    assert_false(r.upgrade);
    assert_int_equal(r.err, H1_OK);
    /* zero copy: slices point into the input */
    const char *p = guard_place(s, strlen(s));
    h1_parse_request(p, strlen(s), &r, hdrs, MAXH, NULL);
    assert_ptr_equal(r.method, p);
    assert_ptr_equal(r.headers[0].name, p + strlen("GET /api/users?id=7&x=1 HTTP/1.1\r\n"));
}

static void test_bodies_and_flags(void **state)
{
    (void)state;
    struct h1_request r;
    parse_ok("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n", &r);
    assert_int_equal(r.method_id, H1_M_POST);
    assert_int_equal(r.body, H1_BODY_LENGTH);
    assert_int_equal(r.content_length, 42);
    assert_null(r.query);

    parse_ok("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", &r);
    assert_int_equal(r.content_length, 5);
    parse_ok("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", &r);
    assert_int_equal(r.body, H1_BODY_LENGTH);
    assert_int_equal(r.content_length, 5);
    parse_ok("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n", &r);
    assert_int_equal(r.content_length, INT64_MAX);
    parse_ok("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &r);
    assert_int_equal(r.body, H1_BODY_LENGTH);
    assert_int_equal(r.content_length, 0);

    parse_ok("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", &r);
    assert_int_equal(r.body, H1_BODY_CHUNKED);
    parse_ok("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED \r\n\r\n", &r);
    assert_int_equal(r.body, H1_BODY_CHUNKED);

    parse_ok("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &r);
    assert_false(r.keep_alive);
    parse_ok("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n", &r);
    assert_false(r.keep_alive);
    parse_ok("GET / HTTP/1.0\r\n\r\n", &r);
    assert_int_equal(r.minor_version, 0);
    assert_false(r.keep_alive);
    assert_null(r.host);
    parse_ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r);
    assert_true(r.keep_alive);
    parse_ok("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", &r);
    assert_false(r.keep_alive);

    parse_ok("PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n", &r);
    assert_true(r.expect_continue);
    parse_ok("PUT /u HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", &r);
    assert_false(r.expect_continue); /* RFC 9110 §10.1.1: ignored from HTTP/1.0 */

    parse_ok("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
             &r);
    assert_true(r.upgrade);
    parse_ok("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", &r);
    assert_false(r.upgrade);
}

static void test_target_forms(void **state)
{
    (void)state;
    struct h1_request r;
    parse_ok("GET http://Example.com:81/p/q?x=1 HTTP/1.1\r\nHost: other\r\n\r\n", &r);
    assert_slice(r.host, r.host_len, "Example.com:81");
    assert_slice(r.path, r.path_len, "/p/q");
    assert_slice(r.query, r.query_len, "x=1");
    parse_ok("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", &r);
    assert_slice(r.path, r.path_len, "/");
    assert_null(r.query);
    parse_ok("GET https://[::1]:8443?a HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n", &r);
    assert_slice(r.host, r.host_len, "[::1]:8443");
    assert_slice(r.path, r.path_len, "/");
    assert_slice(r.query, r.query_len, "a");
    parse_ok("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    assert_int_equal(r.method_id, H1_M_OPTIONS);
    assert_slice(r.path, r.path_len, "*");
    parse_ok("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n", &r);
    assert_slice(r.host, r.host_len, "[::1]:443");
    parse_ok("GET / HTTP/1.1\r\nHost: \r\n\r\n", &r); /* empty Host is allowed (RFC 9112 §3.2) */
    assert_non_null(r.host);
    assert_int_equal(r.host_len, 0);
    parse_ok("GET / HTTP/1.1\r\nHost: my_host.internal%41:\r\n\r\n", &r);
    parse_ok("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", &r);
    assert_int_equal(r.method_id, H1_M_CONNECT);
    assert_slice(r.target, r.target_len, "example.com:443");
    parse_ok("GET /? HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    assert_slice(r.path, r.path_len, "/");
    assert_non_null(r.query); /* "?" with nothing after it is an empty query, not none */
    assert_int_equal(r.query_len, 0);
}

static void test_methods(void **state)
{
    (void)state;
    static const struct {
        const char *m;
        enum h1_method id;
    } t[] = {
        {"GET", H1_M_GET},       {"HEAD", H1_M_HEAD},     {"POST", H1_M_POST},
        {"PUT", H1_M_PUT},       {"DELETE", H1_M_DELETE}, {"PATCH", H1_M_PATCH},
        {"OPTIONS", H1_M_OPTIONS}, {"TRACE", H1_M_TRACE}, {"PURGE", H1_M_OTHER},
        {"get", H1_M_OTHER},     {"M-SEARCH", H1_M_OTHER},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char s[128];
        snprintf(s, sizeof(s), "%s / HTTP/1.1\r\nHost: a\r\n\r\n", t[i].m);
        struct h1_request r;
        parse_ok(s, &r);
        assert_int_equal(r.method_id, t[i].id);
        assert_slice(r.method, r.method_len, t[i].m);
    }
}

static void test_line_endings(void **state)
{
    (void)state;
    struct h1_request r;
    parse_ok("GET / HTTP/1.1\nHost: a\nX: y\n\n", &r);
    assert_int_equal(r.nheaders, 2);
    assert_slice(r.headers[1].value, r.headers[1].value_len, "y");
    parse_ok("GET / HTTP/1.1\r\nHost: a\nX: y\r\n\n", &r);
    /* leading empty lines are skipped and counted in the head length */
    parse_ok("\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &r);
    assert_slice(r.method, r.method_len, "GET");
    /* pipelined: the head ends at the first empty line, the next request is not consumed */
    const char *two = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(req_whole(two, strlen(two), &r, NULL), (int)strlen(two) / 2);
    assert_slice(r.path, r.path_len, "/1");
}

static void test_incomplete(void **state)
{
    (void)state;
    struct h1_request r;
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    for (size_t i = 0; i < strlen(s); i++)
        assert_int_equal(req_whole(s, i, &r, NULL), -2);
    assert_int_equal(req_whole("", 0, &r, NULL), -2);
    assert_int_equal(req_whole("\r\n\r\n", 4, &r, NULL), -2);
}

/* ---- responses ---- */

static void test_responses(void **state)
{
    (void)state;
    struct h1_response r;
    const char *s = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n";
    size_t n = strlen(s);
    assert_int_equal(res_bytewise(s, n, &r, false), (int)n);
    assert_int_equal(res_whole(s, n, &r, false), (int)n);
    assert_int_equal(r.status, 200);
    assert_slice(r.reason, r.reason_len, "OK");
    assert_int_equal(r.body, H1_BODY_LENGTH);
    assert_int_equal(r.content_length, 12);
    assert_true(r.keep_alive);
    assert_int_equal(r.nheaders, 2);
    /* HEAD: no body whatever the headers say */
    assert_int_equal(res_whole(s, n, &r, true), (int)n);
    assert_int_equal(r.body, H1_BODY_NONE);
    assert_true(r.keep_alive);

    static const struct {
        const char *in;
        int status;
        enum h1_body body;
        bool keep_alive;
    } ok[] = {
        {"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 204, H1_BODY_NONE, true},
        {"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", 304, H1_BODY_NONE,
         true},
        {"HTTP/1.1 100 Continue\r\n\r\n", 100, H1_BODY_NONE, true},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", 101, H1_BODY_NONE, true},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 200, H1_BODY_CHUNKED, true},
        {"HTTP/1.1 200 OK\r\n\r\n", 200, H1_BODY_UNTIL_CLOSE, false},
        {"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", 200, H1_BODY_LENGTH, false},
        {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", 200,
         H1_BODY_LENGTH, true},
        {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", 200, H1_BODY_LENGTH,
         false},
        {"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", 404, H1_BODY_LENGTH, true},
        {"HTTP/1.1 503 \r\nContent-Length: 0\r\n\r\n", 503, H1_BODY_LENGTH, true},
        {"HTTP/1.1 200 Very \tOK indeed\nContent-Length: 0\n\n", 200, H1_BODY_LENGTH, true},
        {"HTTP/1.1 599 Custom\r\nContent-Length: 0\r\n\r\n", 599, H1_BODY_LENGTH, true},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        n = strlen(ok[i].in);
        int w = res_whole(ok[i].in, n, &r, false);
        int b = res_bytewise(ok[i].in, n, &r, false);
        if (w != (int)n || b != (int)n || r.status != ok[i].status || r.body != ok[i].body ||
            r.keep_alive != ok[i].keep_alive)
            fail_msg("response %zu: whole %d bytewise %d status %d body %d ka %d (err %s)", i, w,
                     b, r.status, r.body, r.keep_alive, h1_err_text(r.err));
    }

    static const struct {
        const char *in;
        enum h1_err err;
    } bad[] = {
        {"HTTP/1.1 20 OK\r\n\r\n", H1_ERR_STATUS},
        {"HTTP/1.1 2000 OK\r\n\r\n", H1_ERR_STATUS},
        {"HTTP/1.1 099 OK\r\n\r\n", H1_ERR_STATUS},
        {"HTTP/1.1 600 Custom\r\nContent-Length: 0\r\n\r\n", H1_ERR_STATUS},
        {"HTTP/1.1 999 Custom\r\nContent-Length: 0\r\n\r\n", H1_ERR_STATUS},
        {"HTTP/1.1 abc OK\r\n\r\n", H1_ERR_STATUS},
        {"HTTP/1.1  200 OK\r\n\r\n", H1_ERR_STATUS},
        {"HTTP/1.1 200 O\x01K\r\n\r\n", H1_ERR_STATUS},
        {"HTTP/1.1 200 OK\rX: y\r\n\r\n", H1_ERR_STATUS},
        {"HTTP/2.0 200 OK\r\n\r\n", H1_ERR_VERSION},
        {"HTTX/1.1 200 OK\r\n\r\n", H1_ERR_STATUS},
        {"\r\nHTTP/1.1 200 OK\r\n\r\n", H1_ERR_STATUS},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
         H1_ERR_TE_AND_CL},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
         H1_ERR_CONTENT_LENGTH},
        {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", H1_ERR_CONTENT_LENGTH},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", H1_ERR_TE_UNSUPPORTED},
        {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", H1_ERR_TE_HTTP10},
        {"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", H1_ERR_OBS_FOLD},
        {"HTTP/1.1 200 OK\r\nX : a\r\n\r\n", H1_ERR_HEADER_NAME},
        {"HTTP/1.1 200 OK\r\nX: a\x7f\r\n\r\n", H1_ERR_HEADER_VALUE},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = strlen(bad[i].in);
        int w = res_whole(bad[i].in, n, &r, false);
        enum h1_err we = r.err;
        int b = res_bytewise(bad[i].in, n, &r, false);
        if (w != -1 || b != -1 || we != bad[i].err || r.err != bad[i].err)
            fail_msg("bad response %zu: whole %d (%s) bytewise %d (%s)", i, w, h1_err_text(we), b,
                     h1_err_text(r.err));
    }
    assert_int_equal(h1_err_status(H1_ERR_STATUS), 502);
}

static void test_err_text(void **state)
{
    (void)state;
    for (int e = H1_OK; e <= H1_ERR_TE_BAD; e++) {
        assert_non_null(h1_err_text((enum h1_err)e));
        assert_string_not_equal(h1_err_text((enum h1_err)e), "unknown error");
    }
    assert_string_equal(h1_err_text(H1_ERR_TE_AND_CL), "Transfer-Encoding with Content-Length");
}

/* The 16-byte vector scan of values against the bytewise rule: a bad byte at every position of
 * values of every length around the vector width is found, and HTAB/obs-text anywhere is fine. */
static void test_value_scan_positions(void **state)
{
    (void)state;
    static const unsigned char badb[] = {0x00, 0x01, 0x0b, 0x1f, 0x7f, '\r'};
    static const unsigned char goodb[] = {'\t', 0x80, 0xff, ' ', '~'};
    char s[256];
    const char *pre = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
    size_t pl = strlen(pre);
    for (size_t vlen = 1; vlen <= 50; vlen++) {
        for (size_t at = 0; at < vlen; at++) {
            memcpy(s, pre, pl);
            memset(s + pl, 'v', vlen);
            memcpy(s + pl + vlen, "\r\n\r\n", 4);
            size_t n = pl + vlen + 4;
            struct h1_request r;
            for (size_t k = 0; k < sizeof(badb); k++) {
                s[pl + at] = (char)badb[k];
                int w = req_whole(s, n, &r, NULL);
                enum h1_err want = badb[k] == '\r' ? H1_ERR_LINE : H1_ERR_HEADER_VALUE;
                if (w != -1 || r.err != want)
                    fail_msg("byte %02x at %zu of %zu accepted (%d)", badb[k], at, vlen, w);
            }
            for (size_t k = 0; k < sizeof(goodb); k++) {
                s[pl + at] = (char)goodb[k];
                if (req_whole(s, n, &r, NULL) != (int)n)
                    fail_msg("byte %02x at %zu of %zu refused (%s)", goodb[k], at, vlen,
                             h1_err_text(r.err));
                /* the value slice excludes only surrounding whitespace */
                size_t want = vlen;
                if (goodb[k] == '\t' || goodb[k] == ' ') {
                    if (at == vlen - 1)
                        want--; /* trailing OWS trimmed */
                    else if (at == 0)
                        want--; /* leading OWS skipped */
                }
                if (vlen > 1 || (goodb[k] != '\t' && goodb[k] != ' '))
                    assert_int_equal(r.headers[1].value_len, want);
            }
        }
    }
}

/* xorshift64*: deterministic, so a failure reproduces */
static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ull;
}

/* Mutated requests (byte flips, inserted separators, cut lines): whatever the parser decides,
 * the whole and the incremental parse decide the same, and a successful parse is internally
 * consistent. This is the property a proxy relies on. */
static void test_mutations_agree(void **state)
{
    (void)state;
    static const char *const base[] = {
        "GET /a?b=c HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\nConnection: close\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET http://h:1/x HTTP/1.0\nHost: h\n\n",
    };
    static const char ins[] = "\r\n :\t\0,\x7f\x80" "aA0";
    struct limits_case {
        struct h1_limits lim;
    } lims[] = {{{0, 0, 0}}, {{24, 48, 3}}};
    char buf[256];
    for (int iter = 0; iter < 5000; iter++) {
        const char *b = base[rnd() % 4];
        size_t n = strlen(b);
        memcpy(buf, b, n);
        int muts = 1 + (int)(rnd() % 3);
        for (int m = 0; m < muts; m++) {
            size_t at = rnd() % n;
            switch (rnd() % 3) {
            case 0: buf[at] = ins[rnd() % (sizeof(ins) - 1)]; break;
            case 1:
                if (n < sizeof(buf) - 1) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = ins[rnd() % (sizeof(ins) - 1)];
                    n++;
                }
                break;
            default:
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
                break;
            }
        }
        const struct h1_limits *lim = &lims[iter % 2].lim;
        struct h1_request r;
        int w = req_whole(buf, n, &r, lim);
        enum h1_err we = r.err;
        struct h1_request wr = r;
        int bw = req_bytewise(buf, n, &r, lim);
        if (w != bw || (w == -1 && we != r.err))
            fail_msg("iter %d: whole %d (%s) bytewise %d (%s) for %.*s", iter, w, h1_err_text(we),
                     bw, h1_err_text(r.err), (int)n, buf);
        if (w > 0) {
            assert_true(wr.minor_version == 0 || wr.minor_version == 1);
            assert_true(wr.body != H1_BODY_CHUNKED || wr.minor_version == 1);
            if (wr.minor_version == 1)
                assert_non_null(wr.host);
        }
        /* the dribble pre-check never hides a complete head */
        for (size_t k = 1; k <= n; k++) {
            const char *p = guard_place(buf, k);
            int pr = h1_parse_request(p, k, &r, hdrs, MAXH, lim);
            if (pr > 0)
                assert_true(h1_head_maybe_complete(p, k, k - 1));
            if (pr != -2)
                break;
        }
    }
}

static void test_maybe_complete(void **state)
{
    (void)state;
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t n = strlen(s);
    const char *p = guard_place(s, n);
    /* only the last byte completes it */
    for (size_t k = 1; k < n; k++)
        assert_false(h1_head_maybe_complete(p, k, k - 1));
    assert_true(h1_head_maybe_complete(p, n, n - 1));
    assert_true(h1_head_maybe_complete(p, n, 0));
    assert_false(h1_head_maybe_complete(p, n - 1, 0));
    const char *lf = "GET / HTTP/1.1\nHost: a\n\n";
    n = strlen(lf);
    p = guard_place(lf, n);
    assert_true(h1_head_maybe_complete(p, n, n - 1));
    assert_false(h1_head_maybe_complete(p, n - 1, 0));
    /* a leading empty line says "maybe": the parse then says -2 */
    assert_true(h1_head_maybe_complete("\r\n", 2, 0));
    assert_false(h1_head_maybe_complete("", 0, 0));
}

static int teardown_all(void **state)
{
    (void)state;
    guard_free();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_requests),   cmocka_unit_test(test_smuggling_set),
        cmocka_unit_test(test_oversize_header),
        cmocka_unit_test(test_request_line_limit), cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_simple_get),     cmocka_unit_test(test_bodies_and_flags),
        cmocka_unit_test(test_target_forms),   cmocka_unit_test(test_methods),
        cmocka_unit_test(test_line_endings),   cmocka_unit_test(test_incomplete),
        cmocka_unit_test(test_responses),      cmocka_unit_test(test_err_text),
        cmocka_unit_test(test_mutations_agree), cmocka_unit_test(test_maybe_complete),
        cmocka_unit_test(test_value_scan_positions),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_all);
}
