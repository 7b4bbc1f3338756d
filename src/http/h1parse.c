/* Strict HTTP/1.x head parser (RFC 9112), picohttpparser style: stateless, zero-copy, re-run on
 * the whole head-so-far when bytes arrive. It decides body framing and refuses every ambiguity
 * that lets two HTTP parsers disagree about where a message ends (request smuggling). It does not
 * read bodies: see chunked.c. */
#include "http/h1parse.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "http/internal.h"

/* Character classes, generated from the RFC ABNF (one byte per entry is faster than bit tests on
 * this path, and 1 KiB fits in L1 next to the request). */
const unsigned char h1__tchar[256] = {
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,1,0,1,1,1,1,1,0,0,1,1,0,1,1,0,1,1,1,1,1,1,1,1,1,1,0,0,0,0,0,0,
    0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,0,0,0,1,1,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,0,1,0,1,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
};

const unsigned char h1__vchar[256] = {
    0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,0,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
};

/* request-target bytes: VCHAR except '#' (a fragment is never sent), obs-text tolerated as nginx
 * does (raw UTF-8 paths exist in the wild and cannot desynchronise anything). */
const unsigned char h1__target[256] = {
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,1,1,0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,0,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
};

/* reg-name bytes (RFC 3986 §3.2.2): unreserved, sub-delims and '%'. No '@' (userinfo), '/', '?',
 * '#' or whitespace: those would let one Host mean two different origins to two parsers. */
static const unsigned char h1_regname[256] = {
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,1,0,0,1,1,1,1,1,1,1,1,1,1,1,0,1,1,1,1,1,1,1,1,1,1,0,1,0,1,0,0,
    0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,0,0,0,0,1,
    0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,0,0,0,1,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
};

#define H1_DEFAULT_LINE 8192
#define H1_DEFAULT_HEAD 32768
#define H1_DEFAULT_HEADERS 100
/* Larger lengths cannot be an off_t: refuse them rather than wrap. */
#define H1_CL_MAX ((uint64_t)INT64_MAX)

int h1_err_status(enum h1_err err)
{
    switch (err) {
    case H1_OK: return 200;
    case H1_ERR_VERSION: return 505;
    case H1_ERR_TE_UNSUPPORTED: return 501;
    case H1_ERR_URI_TOO_LONG: return 414;
    case H1_ERR_HEAD_TOO_LARGE:
    case H1_ERR_TOO_MANY_HEADERS: return 431;
    case H1_ERR_STATUS: return 502;
    default: return 400;
    }
}

const char *h1_err_text(enum h1_err err)
{
    switch (err) {
    case H1_OK: return "ok";
    case H1_ERR_METHOD: return "invalid method token";
    case H1_ERR_TARGET: return "invalid request-target";
    case H1_ERR_VERSION: return "HTTP version not supported";
    case H1_ERR_LINE: return "malformed start line or header line";
    case H1_ERR_HEADER_NAME: return "invalid header name";
    case H1_ERR_HEADER_VALUE: return "invalid character in header value";
    case H1_ERR_OBS_FOLD: return "obsolete line folding";
    case H1_ERR_CONTENT_LENGTH: return "invalid or conflicting Content-Length";
    case H1_ERR_TE_AND_CL: return "Transfer-Encoding with Content-Length";
    case H1_ERR_TE_UNSUPPORTED: return "unsupported transfer coding";
    case H1_ERR_TE_HTTP10: return "Transfer-Encoding in an HTTP/1.0 message";
    case H1_ERR_HOST: return "missing, repeated or invalid Host";
    case H1_ERR_URI_TOO_LONG: return "request line too long";
    case H1_ERR_HEAD_TOO_LARGE: return "header section too large";
    case H1_ERR_TOO_MANY_HEADERS: return "too many header fields";
    case H1_ERR_STATUS: return "malformed status line";
    case H1_ERR_TE_BAD: return "Transfer-Encoding: chunked not final or repeated";
    case H1_ERR_CONN_FIELD: return "connection-specific header field in HTTP/2";
    case H1_ERR_PSEUDO: return "missing, repeated or misplaced pseudo-header field";
    }
    return "unknown error";
}

/* What the field loop learnt about the headers that decide framing and connection reuse. */
struct h1_fields {
    unsigned ncl;           /* Content-Length field lines */
    uint64_t cl;
    unsigned nte;           /* Transfer-Encoding field lines */
    unsigned te_chunked;    /* "chunked" codings seen, over all TE lines */
    bool te_last_chunked;   /* the last coding seen is "chunked" */
    bool te_unknown;        /* a coding other than chunked */
    bool te_empty;          /* an empty list element */
    unsigned nhost;
    const char *host;
    size_t host_len;
    bool conn_close, conn_keep_alive, conn_upgrade, has_upgrade, expect_continue;
};

/* Case-insensitive compare of a validated tchar name with a lower-case literal: OR-ing 0x20
 * folds letters and leaves every other tchar that could equal a literal byte unchanged. */
static inline bool name_is(const unsigned char *n, const char *lit, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((n[i] | 0x20) != (unsigned char)lit[i])
            return false;
    return true;
}

static inline bool ows(unsigned char c) { return c == ' ' || c == '\t'; }
static inline bool is_digit(unsigned char c) { return (unsigned)(c - '0') <= 9; }

/* Next comma-separated element of <v>[*<pos>, <len>), OWS trimmed. Returns false at the end. */
static bool list_next(const unsigned char *v, size_t len, size_t *pos, const unsigned char **el,
                      size_t *el_len)
{
    size_t i = *pos;
    if (i > len)
        return false;
    size_t s = i;
    while (i < len && v[i] != ',')
        i++;
    size_t e = i;
    while (s < e && ows(v[s]))
        s++;
    while (e > s && ows(v[e - 1]))
        e--;
    *el = v + s;
    *el_len = e - s;
    *pos = i + 1; /* past the comma, or len + 1 at the end */
    return true;
}

/* Content-Length = 1*DIGIT, possibly a list of identical values ("5, 5") from a sender that
 * merged duplicate lines (RFC 9110 §8.6). Returns 0 with the value, -1 if invalid. */
int h1__parse_content_length(const unsigned char *v, size_t len, uint64_t *out)
{
    size_t pos = 0;
    const unsigned char *el;
    size_t el_len;
    bool any = false;
    uint64_t first = 0;
    while (list_next(v, len, &pos, &el, &el_len)) {
        if (el_len == 0)
            return -1;
        uint64_t n = 0;
        for (size_t i = 0; i < el_len; i++) {
            unsigned d = (unsigned)el[i] - '0';
            if (d > 9)
                return -1; /* sign, space, hex, anything */
            if (n > (H1_CL_MAX - d) / 10)
                return -1;
            n = n * 10 + d;
        }
        if (any && n != first)
            return -1;
        first = n;
        any = true;
    }
    if (!any)
        return -1;
    *out = first;
    return 0;
}

static void parse_transfer_encoding(const unsigned char *v, size_t len, struct h1_fields *f)
{
    size_t pos = 0;
    const unsigned char *el;
    size_t el_len;
    while (list_next(v, len, &pos, &el, &el_len)) {
        if (el_len == 0) {
            f->te_empty = true;
        } else if (el_len == 7 && name_is(el, "chunked", 7)) {
            f->te_chunked++;
            f->te_last_chunked = true;
        } else {
            /* gzip, identity, "chunked;x=y", garbage: nothing we can frame by. */
            f->te_unknown = true;
            f->te_last_chunked = false;
        }
    }
}

static void parse_connection(const unsigned char *v, size_t len, struct h1_fields *f)
{
    size_t pos = 0;
    const unsigned char *el;
    size_t el_len;
    while (list_next(v, len, &pos, &el, &el_len)) {
        if (el_len == 5 && name_is(el, "close", 5))
            f->conn_close = true;
        else if (el_len == 10 && name_is(el, "keep-alive", 10))
            f->conn_keep_alive = true;
        else if (el_len == 7 && name_is(el, "upgrade", 7))
            f->conn_upgrade = true;
    }
}

static inline bool is_hex(unsigned char c)
{
    return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* authority = uri-host [":" port] without userinfo (RFC 9110 §7.2, RFC 3986 §3.2): a reg-name
 * with well-formed %XX, or a bracketed IP literal, then optional digits. An empty value is valid
 * only when <allow_empty> (a Host header for a target without authority); <need_port> is for
 * CONNECT. */
bool h1__authority_valid(const unsigned char *v, size_t len, bool allow_empty, bool need_port)
{
    if (len == 0)
        return allow_empty && !need_port;
    size_t i = 0;
    if (v[0] == '[') {
        i = 1;
        while (i < len && (is_hex(v[i]) || v[i] == ':' || v[i] == '.'))
            i++;
        if (i == 1 || i == len || v[i] != ']')
            return false;
        i++;
    } else {
        while (i < len && h1_regname[v[i]]) {
            if (v[i] == '%' && (len - i < 3 || !is_hex(v[i + 1]) || !is_hex(v[i + 2])))
                return false;
            i++;
        }
        if (i == 0)
            return false; /* ":80" */
    }
    if (i == len)
        return !need_port;
    if (v[i] != ':')
        return false;
    size_t p0 = ++i;
    while (i < len && is_digit(v[i]))
        i++;
    return i == len && (i > p0 || !need_port);
}

/* Records one field line that matters for framing. Returns 0, or -1 with *<err>. */
static int note_field(const unsigned char *n, size_t nlen, const unsigned char *v, size_t vlen,
                      bool request, struct h1_fields *f, enum h1_err *err)
{
    switch (nlen) {
    case 4:
        if (request && name_is(n, "host", 4)) {
            /* Two Hosts, or one with '@' or '/', let two parsers pick two different origins. */
            if (++f->nhost > 1 || !h1__authority_valid(v, vlen, true, false)) {
                *err = H1_ERR_HOST;
                return -1;
            }
            f->host = (const char *)v;
            f->host_len = vlen;
        }
        break;
    case 6:
        if (request && name_is(n, "expect", 6) && vlen == 12 && name_is(v, "100-continue", 12))
            f->expect_continue = true;
        break;
    case 7:
        if (name_is(n, "upgrade", 7))
            f->has_upgrade = true;
        break;
    case 10:
        if (name_is(n, "connection", 10))
            parse_connection(v, vlen, f);
        break;
    case 14:
        if (name_is(n, "content-length", 14)) {
            uint64_t cl;
            if (h1__parse_content_length(v, vlen, &cl) == -1 || (f->ncl > 0 && cl != f->cl)) {
                *err = H1_ERR_CONTENT_LENGTH;
                return -1;
            }
            f->ncl++;
            f->cl = cl;
        }
        break;
    case 17:
        if (name_is(n, "transfer-encoding", 17)) {
            f->nte++;
            parse_transfer_encoding(v, vlen, f);
        }
        break;
    default:
        break;
    }
    return 0;
}

/* First byte in [p, end) that is not a plain field-value byte (SP..'~' or obs-text): a CTL,
 * DEL, CR/LF, or HTAB (valid, but left to the caller's table loop). 16 bytes per step, without
 * reading past <end> (the input may sit right before an unmapped page). */
static inline const unsigned char *scan_value(const unsigned char *p, const unsigned char *end)
{
#ifdef __SSE2__
    const __m128i sp = _mm_set1_epi8(0x20);
    const __m128i del = _mm_set1_epi8(0x7f);
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* unsigned x >= 0x20  <=>  max(x, 0x20) == x */
        __m128i ge = _mm_cmpeq_epi8(_mm_max_epu8(x, sp), x);
        __m128i bad = _mm_or_si128(_mm_andnot_si128(ge, _mm_set1_epi8(-1)),
                                   _mm_cmpeq_epi8(x, del));
        unsigned m = (unsigned)_mm_movemask_epi8(bad);
        if (m)
            return p + __builtin_ctz(m);
        p += 16;
    }
#endif
    while (p < end && h1__vchar[*p] && *p != '\t')
        p++;
    return p;
}

/* Parses field lines from <pos> up to and including the empty line, inside the window
 * [0, <end>). Returns the offset after the head, 0 when the window ends first, -1 on error. */
static long parse_fields(const unsigned char *b, size_t pos, size_t end, struct h1_header *hdr,
                         size_t max_hdr, size_t *nhdr, bool request, struct h1_fields *f,
                         enum h1_err *err)
{
    size_t n = 0;
    for (;;) {
        if (pos >= end)
            return 0;
        unsigned char c = b[pos];
        if (c == '\r') {
            if (pos + 1 >= end)
                return 0;
            if (b[pos + 1] != '\n')
                goto bad_line;
            *nhdr = n;
            return (long)(pos + 2);
        }
        if (c == '\n') {
            *nhdr = n;
            return (long)(pos + 1);
        }
        if (ows(c)) {
            /* Whitespace after the start line could hide a field from us; after a field it is
             * obs-fold, which RFC 9112 §5.2 lets a server reject. Both are refused. */
            *err = n == 0 ? H1_ERR_LINE : H1_ERR_OBS_FOLD;
            return -1;
        }
        if (n == max_hdr) {
            *err = H1_ERR_TOO_MANY_HEADERS;
            return -1;
        }
        size_t n0 = pos;
        while (pos < end && h1__tchar[b[pos]])
            pos++;
        if (pos >= end)
            return 0;
        if (b[pos] != ':') {
            if (b[pos] == '\r' || b[pos] == '\n')
                goto bad_line; /* no colon */
            *err = H1_ERR_HEADER_NAME; /* includes "Name : value" */
            return -1;
        }
        if (pos == n0) {
            *err = H1_ERR_HEADER_NAME;
            return -1;
        }
        size_t nlen = pos - n0;
        pos++;
        while (pos < end && ows(b[pos]))
            pos++;
        size_t v0 = pos;
        pos = (size_t)(scan_value(b + pos, b + end) - b);
        while (pos < end && h1__vchar[b[pos]])
            pos++; /* the vector scan also stops at HTAB: finish such values bytewise */
        if (pos >= end)
            return 0;
        size_t vend = pos;
        c = b[pos];
        if (c == '\r') {
            if (pos + 1 >= end)
                return 0;
            if (b[pos + 1] != '\n')
                goto bad_line; /* bare CR */
            pos += 2;
        } else if (c == '\n') {
            pos++;
        } else {
            *err = H1_ERR_HEADER_VALUE;
            return -1;
        }
        while (vend > v0 && ows(b[vend - 1]))
            vend--;
        hdr[n].name = (const char *)b + n0;
        hdr[n].name_len = nlen;
        hdr[n].value = (const char *)b + v0;
        hdr[n].value_len = vend - v0;
        n++;
        if (note_field(b + n0, nlen, b + v0, vend - v0, request, f, err) == -1)
            return -1;
    }
bad_line:
    *err = H1_ERR_LINE;
    return -1;
}

/* "HTTP/x.y" at <p> with 8 bytes available: 1 for 1.x, 0 for a well-formed other version, -1 if
 * malformed. */
static int parse_version(const unsigned char *p, int *minor)
{
    if (memcmp(p, "HTTP/", 5) != 0 || !is_digit(p[5]) || p[6] != '.' || !is_digit(p[7]))
        return -1;
    *minor = p[7] - '0';
    return p[5] == '1' && p[7] <= '1';
}

/* Checks "HTTP/x.y" against the bytes available in [p, end): -2 when they are a prefix of a
 * version (so we must wait), else parse_version(). */
static int version_at(const unsigned char *p, const unsigned char *end, int *minor)
{
    static const char tmpl[] = "HTTP/0.0";
    size_t avail = (size_t)(end - p);
    for (size_t i = 0; i < 8; i++) {
        if (i == avail)
            return -2;
        bool ok = (i == 5 || i == 7) ? is_digit(p[i]) : p[i] == (unsigned char)tmpl[i];
        if (!ok)
            return -1;
    }
    return parse_version(p, minor);
}

enum h1_method h1__method_id(const char *m, size_t len)
{
    switch (len) {
    case 3:
        if (memcmp(m, "GET", 3) == 0) return H1_M_GET;
        if (memcmp(m, "PUT", 3) == 0) return H1_M_PUT;
        break;
    case 4:
        if (memcmp(m, "HEAD", 4) == 0) return H1_M_HEAD;
        if (memcmp(m, "POST", 4) == 0) return H1_M_POST;
        break;
    case 5:
        if (memcmp(m, "PATCH", 5) == 0) return H1_M_PATCH;
        if (memcmp(m, "TRACE", 5) == 0) return H1_M_TRACE;
        break;
    case 6:
        if (memcmp(m, "DELETE", 6) == 0) return H1_M_DELETE;
        break;
    case 7:
        if (memcmp(m, "OPTIONS", 7) == 0) return H1_M_OPTIONS;
        if (memcmp(m, "CONNECT", 7) == 0) return H1_M_CONNECT;
        break;
    }
    return H1_M_OTHER;
}

/* Splits path and query of [p, p+len) (no fragment: '#' is refused earlier). */
static void split_query(struct h1_request *r, const char *p, size_t len)
{
    const char *q = memchr(p, '?', len);
    if (q) {
        r->path = p;
        r->path_len = (size_t)(q - p);
        r->query = q + 1;
        r->query_len = len - r->path_len - 1;
    } else {
        r->path = p;
        r->path_len = len;
    }
}

/* Classifies the request-target (RFC 9112 §3.2) and fills path/query; for absolute-form the
 * authority becomes the host (§3.2.2: it wins over Host). Returns 0 or -1. */
int h1__classify_target(struct h1_request *r, const char **abs_host, size_t *abs_host_len)
{
    const char *t = r->target;
    size_t len = r->target_len;
    if (r->method_id == H1_M_CONNECT && r->protocol == NULL) {
        /* authority-form: host ":" port, nothing else (an extended CONNECT, RFC 8441, has an
         * origin-form :path instead) */
        if (!h1__authority_valid((const unsigned char *)t, len, false, true))
            return -1;
        r->path = t;
        r->path_len = 0;
        return 0;
    }
    if (t[0] == '/') {
        split_query(r, t, len);
        return 0;
    }
    if (len == 1 && t[0] == '*') {
        if (r->method_id != H1_M_OPTIONS)
            return -1; /* asterisk-form is for OPTIONS only (RFC 9112 §3.2.4) */
        r->path = t;
        r->path_len = 1;
        return 0;
    }
    /* absolute-form: scheme "://" authority [path-abempty] ["?" query] */
    size_t i = 0;
    if (!((t[0] | 0x20) >= 'a' && (t[0] | 0x20) <= 'z'))
        return -1;
    while (i < len && (((t[i] | 0x20) >= 'a' && (t[i] | 0x20) <= 'z') ||
                       is_digit((unsigned char)t[i]) || t[i] == '+' || t[i] == '-' || t[i] == '.'))
        i++;
    if (len - i < 3 || memcmp(t + i, "://", 3) != 0)
        return -1;
    i += 3;
    size_t a0 = i;
    while (i < len && t[i] != '/' && t[i] != '?')
        i++;
    /* '@' userinfo fails here too: RFC 9110 §4.2.4 says to treat it as an error */
    if (!h1__authority_valid((const unsigned char *)t + a0, i - a0, false, false))
        return -1;
    *abs_host = t + a0;
    *abs_host_len = i - a0;
    if (i == len || t[i] == '?') {
        /* empty path means "/" (RFC 9110 §4.2.3); the query still points into the buffer */
        r->path = "/";
        r->path_len = 1;
        if (i < len) {
            r->query = t + i + 1;
            r->query_len = len - i - 1;
        }
        return 0;
    }
    split_query(r, t + i, len - i);
    return 0;
}

void h1__limits_of(const struct h1_limits *lim, size_t max_headers, size_t *line, size_t *head,
                      size_t *hdrs)
{
    *line = lim && lim->max_request_line ? lim->max_request_line : H1_DEFAULT_LINE;
    *head = lim && lim->max_head ? lim->max_head : H1_DEFAULT_HEAD;
    *hdrs = lim && lim->max_headers ? lim->max_headers : H1_DEFAULT_HEADERS;
    if (*hdrs > max_headers)
        *hdrs = max_headers;
}

/* Framing checks common to requests and responses once the head is complete (RFC 9112 §6). */
static int check_framing(const struct h1_fields *f, int minor, enum h1_err *err)
{
    if (f->nte == 0)
        return 0;
    if (f->ncl > 0)
        *err = H1_ERR_TE_AND_CL; /* §6.1: ought to be handled as an error; we always do */
    else if (minor == 0)
        *err = H1_ERR_TE_HTTP10; /* §6.1: faulty framing, an HTTP/1.0 peer could not know TE */
    else if (f->te_unknown)
        *err = H1_ERR_TE_UNSUPPORTED;
    else if (f->te_empty || f->te_chunked != 1 || !f->te_last_chunked)
        *err = H1_ERR_TE_BAD;
    else
        return 0;
    return -1;
}

bool h1_head_maybe_complete(const char *buf, size_t len, size_t prev_len)
{
    const char *p = buf + prev_len, *end = buf + len;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        size_t i = (size_t)(p - buf);
        /* an empty line: LF at the start, or after LF or after CRLF */
        if (i == 0 || buf[i - 1] == '\n')
            return true;
        if (buf[i - 1] == '\r' && (i == 1 || buf[i - 2] == '\n'))
            return true;
        p++;
    }
    return false;
}

int h1_parse_request(const char *buf, size_t len, struct h1_request *req,
                     struct h1_header *headers, size_t max_headers, const struct h1_limits *lim)
{
    const unsigned char *b = (const unsigned char *)buf;
    size_t max_line, max_head, max_hdr;
    h1__limits_of(lim, max_headers, &max_line, &max_head, &max_hdr);
    memset(req, 0, sizeof(*req));
    req->headers = headers;
    /* Everything below looks only at [0, end): the same prefix decides the same way whether the
     * bytes came at once or one by one, and nothing beyond the limit is ever examined. */
    size_t end = len < max_head ? len : max_head;
    size_t pos = 0;

    /* RFC 9112 §2.2: ignore empty lines before the request line (CRLF left over after a body) */
    for (;;) {
        if (pos >= end)
            goto incomplete;
        if (b[pos] == '\n') {
            pos++;
        } else if (b[pos] == '\r') {
            if (pos + 1 >= end)
                goto incomplete;
            if (b[pos + 1] != '\n')
                goto err_line;
            pos += 2;
        } else {
            break;
        }
    }

    size_t line0 = pos;
    /* request line window: at most max_line bytes plus CRLF */
    size_t rl_end = line0 + max_line + 2 < end ? line0 + max_line + 2 : end;
    while (pos < rl_end && h1__tchar[b[pos]])
        pos++;
    if (pos >= rl_end)
        goto rl_short;
    if (b[pos] != ' ' || pos == line0) {
        req->err = H1_ERR_METHOD;
        return -1;
    }
    req->method = buf + line0;
    req->method_len = pos - line0;
    req->method_id = h1__method_id(req->method, req->method_len);

    size_t t0 = ++pos;
    while (pos < rl_end && h1__target[b[pos]])
        pos++;
    if (pos >= rl_end)
        goto rl_short;
    if (b[pos] != ' ') {
        if (b[pos] == '\r' || b[pos] == '\n')
            goto err_line; /* HTTP/0.9 style, no version */
        req->err = H1_ERR_TARGET;
        return -1;
    }
    if (pos == t0) {
        req->err = H1_ERR_TARGET;
        return -1;
    }
    req->target = buf + t0;
    req->target_len = pos - t0;
    pos++;

    int v = version_at(b + pos, b + rl_end, &req->minor_version);
    if (v == -2)
        goto rl_short;
    if (v == -1)
        goto err_line;
    if (v == 0) {
        req->err = H1_ERR_VERSION;
        return -1;
    }
    pos += 8;
    if (pos >= rl_end)
        goto rl_short;
    size_t line_len = pos - line0;
    if (b[pos] == '\r') {
        if (pos + 1 >= rl_end)
            goto rl_short;
        if (b[pos + 1] != '\n')
            goto err_line;
        pos += 2;
    } else if (b[pos] == '\n') {
        pos++;
    } else {
        goto err_line;
    }
    if (line_len > max_line) {
        req->err = H1_ERR_URI_TOO_LONG;
        return -1;
    }

    const char *abs_host = NULL;
    size_t abs_host_len = 0;
    if (h1__classify_target(req, &abs_host, &abs_host_len) == -1) {
        req->err = H1_ERR_TARGET;
        return -1;
    }

    struct h1_fields f;
    memset(&f, 0, sizeof(f));
    long r = parse_fields(b, pos, end, headers, max_hdr, &req->nheaders, true, &f, &req->err);
    if (r == -1)
        return -1;
    if (r == 0)
        goto incomplete;

    /* RFC 9112 §3.2: exactly one Host in HTTP/1.1 (absolute-form included) */
    if (f.nhost == 0 && req->minor_version == 1) {
        req->err = H1_ERR_HOST;
        return -1;
    }
    if (check_framing(&f, req->minor_version, &req->err) == -1)
        return -1;
    if (abs_host) {
        req->host = abs_host;
        req->host_len = abs_host_len;
    } else {
        req->host = f.host;
        req->host_len = f.host_len;
    }
    if (f.nte) {
        req->body = H1_BODY_CHUNKED;
    } else if (f.ncl) {
        req->body = H1_BODY_LENGTH;
        req->content_length = f.cl;
    }
    req->keep_alive = req->minor_version == 1 ? !f.conn_close : f.conn_keep_alive && !f.conn_close;
    req->expect_continue = f.expect_continue && req->minor_version == 1;
    req->upgrade = f.conn_upgrade && f.has_upgrade;
    return (int)r;

rl_short:
    /* The request line did not end inside its window: too long if the window is full. */
    if (rl_end == line0 + max_line + 2) {
        req->err = H1_ERR_URI_TOO_LONG;
        return -1;
    }
incomplete:
    if (len >= max_head) {
        req->err = H1_ERR_HEAD_TOO_LARGE;
        return -1;
    }
    return -2;
err_line:
    req->err = H1_ERR_LINE;
    return -1;
}

int h1_parse_response(const char *buf, size_t len, struct h1_response *res,
                      struct h1_header *headers, size_t max_headers,
                      const struct h1_limits *lim, bool head_request)
{
    const unsigned char *b = (const unsigned char *)buf;
    size_t max_line, max_head, max_hdr;
    h1__limits_of(lim, max_headers, &max_line, &max_head, &max_hdr);
    memset(res, 0, sizeof(*res));
    res->headers = headers;
    size_t end = len < max_head ? len : max_head;
    size_t rl_end = max_line + 2 < end ? max_line + 2 : end;
    size_t pos = 0;

    int v = version_at(b, b + rl_end, &res->minor_version);
    if (v == -2)
        goto rl_short;
    if (v == -1)
        goto err_status;
    if (v == 0) {
        res->err = H1_ERR_VERSION;
        return -1;
    }
    pos = 8;
    /* SP 3DIGIT */
    for (size_t i = 0; i < 4; i++) {
        if (pos + i >= rl_end)
            goto rl_short;
        unsigned char c = b[pos + i];
        if (i == 0 ? c != ' ' : !is_digit(c))
            goto err_status;
    }
    res->status = (b[pos + 1] - '0') * 100 + (b[pos + 2] - '0') * 10 + (b[pos + 3] - '0');
    /* RFC 9110 §15: 100-599; a 6xx-9xx would reach clients and caches with no defined meaning */
    if (res->status < 100 || res->status > 599)
        goto err_status;
    pos += 4;
    if (pos >= rl_end)
        goto rl_short;
    /* [ SP reason-phrase ]; a missing SP before an empty reason is common and harmless */
    if (b[pos] == ' ') {
        pos++;
        size_t r0 = pos;
        while (pos < rl_end && h1__vchar[b[pos]])
            pos++;
        if (pos >= rl_end)
            goto rl_short;
        res->reason = buf + r0;
        res->reason_len = pos - r0;
    } else {
        res->reason = buf + pos;
    }
    size_t line_len = pos;
    if (b[pos] == '\r') {
        if (pos + 1 >= rl_end)
            goto rl_short;
        if (b[pos + 1] != '\n')
            goto err_status;
        pos += 2;
    } else if (b[pos] == '\n') {
        pos++;
    } else {
        goto err_status;
    }
    if (line_len > max_line) {
        res->err = H1_ERR_HEAD_TOO_LARGE;
        return -1;
    }

    struct h1_fields f;
    memset(&f, 0, sizeof(f));
    long r = parse_fields(b, pos, end, headers, max_hdr, &res->nheaders, false, &f, &res->err);
    if (r == -1)
        return -1;
    if (r == 0)
        goto incomplete;
    if (check_framing(&f, res->minor_version, &res->err) == -1)
        return -1;
    res->keep_alive = res->minor_version == 1 ? !f.conn_close : f.conn_keep_alive && !f.conn_close;
    /* RFC 9112 §6.3: these never have content, whatever the headers say */
    if (head_request || res->status < 200 || res->status == 204 || res->status == 304) {
        res->body = H1_BODY_NONE;
    } else if (f.nte) {
        res->body = H1_BODY_CHUNKED;
    } else if (f.ncl) {
        res->body = H1_BODY_LENGTH;
        res->content_length = f.cl;
    } else {
        res->body = H1_BODY_UNTIL_CLOSE;
        res->keep_alive = false;
    }
    if (f.ncl)
        res->content_length = f.cl; /* still useful for HEAD: the length of the GET body */
    return (int)r;

rl_short:
    if (rl_end == max_line + 2) {
        res->err = H1_ERR_HEAD_TOO_LARGE;
        return -1;
    }
incomplete:
    if (len >= max_head) {
        res->err = H1_ERR_HEAD_TOO_LARGE;
        return -1;
    }
    return -2;
err_status:
    res->err = H1_ERR_STATUS;
    return -1;
}
