/* URLs for people (url_parse: command lines and config) and for cache keys (normalization: a key
 * is built only for a path already in normal form, and an invalidation of /a/./b or /a/%62
 * reaches /a/b). Only http and https; no userinfo, no IDNA. */
#include "http/url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

static bool ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x |= 0x20;
        if (y >= 'A' && y <= 'Z')
            y |= 0x20;
        if (x != y)
            return false;
    }
    return true;
}

static int fail(char *err, size_t errlen, const char *s, const char *what)
{
    if (err && errlen)
        snprintf(err, errlen, "invalid URL \"%.60s%s\": %s", s, strlen(s) > 60 ? "..." : "",
                 what); /* the reason must survive a small err buffer */
    return -1;
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* reg-name characters: unreserved, sub-delims and '%' (RFC 3986 §3.2.2) */
static bool reg_name_ch(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("-._~!$&'()*+,;=%", c) != NULL;
}

int url_parse(const char *s, struct url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof(*u));
    size_t len = strlen(s);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return fail(err, errlen, s, "contains whitespace or control characters");
    const char *p;
    if (len >= 7 && ieq(s, "http://", 7)) {
        p = s + 7;
        u->port = 80;
    } else if (len >= 8 && ieq(s, "https://", 8)) {
        p = s + 8;
        u->tls = true;
        u->port = 443;
    } else {
        return fail(err, errlen, s, "expected http:// or https://");
    }
    const char *auth_end = p + strcspn(p, "/?#");
    const char *at = memchr(p, '@', (size_t)(auth_end - p));
    if (at)
        return fail(err, errlen, s, "user:password@ is not supported");
    const char *h = p, *h_end, *port = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(auth_end - p));
        if (!rb)
            return fail(err, errlen, s, "missing ']' after IPv6 address");
        h = p + 1;
        h_end = rb;
        if (h_end == h)
            return fail(err, errlen, s, "empty IPv6 address");
        for (const char *q = h; q < h_end; q++)
            if (!is_hex((unsigned char)*q) && *q != ':' && *q != '.')
                return fail(err, errlen, s, "invalid character in IPv6 address");
        if (!memchr(h, ':', (size_t)(h_end - h)))
            return fail(err, errlen, s, "IPv6 address without ':'");
        if (rb + 1 < auth_end) {
            if (rb[1] != ':')
                return fail(err, errlen, s, "unexpected text after ']'");
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(auth_end - p));
        h_end = colon ? colon : auth_end;
        if (colon)
            port = colon + 1;
        for (const char *q = h; q < h_end; q++)
            if (!reg_name_ch((unsigned char)*q))
                return fail(err, errlen, s, "invalid character in host");
    }
    if (h_end == h)
        return fail(err, errlen, s, "missing host");
    if ((size_t)(h_end - h) >= sizeof(u->host))
        return fail(err, errlen, s, "host longer than 255 bytes");
    memcpy(u->host, h, (size_t)(h_end - h));
    u->host[h_end - h] = '\0';
    if (port) {
        if (port == auth_end)
            return fail(err, errlen, s, "empty port");
        long v = 0;
        for (const char *q = port; q < auth_end; q++) {
            if (*q < '0' || *q > '9')
                return fail(err, errlen, s, "port is not a number");
            v = v * 10 + (*q - '0');
            if (v > 65535)
                return fail(err, errlen, s, "port out of range 1-65535");
        }
        if (v == 0)
            return fail(err, errlen, s, "port out of range 1-65535");
        u->port = (int)v;
    }
    /* path and query; a fragment is never sent */
    const char *rest = auth_end;
    size_t rest_len = strcspn(rest, "#");
    size_t need = rest_len + (rest_len == 0 || rest[0] == '?');
    if (need >= sizeof(u->path))
        return fail(err, errlen, s, "path longer than 2047 bytes");
    char *o = u->path;
    if (rest_len == 0 || rest[0] == '?')
        *o++ = '/';
    memcpy(o, rest, rest_len);
    o[rest_len] = '\0';
    return 0;
}

static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

static int hexv(unsigned char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

/* remove_dot_segments (RFC 3986 §5.2.4) in place over <s>[0,<n>); returns the new length. The
 * output never outgrows the input read so far, so one buffer serves both. */
static size_t remove_dots(char *s, size_t n)
{
    size_t r = 0, w = 0;
    while (r < n) {
        size_t left = n - r;
        const char *in = s + r;
        if (left >= 3 && memcmp(in, "../", 3) == 0) {
            r += 3;
        } else if (left >= 2 && memcmp(in, "./", 2) == 0) {
            r += 2;
        } else if (left >= 3 && memcmp(in, "/./", 3) == 0) {
            r += 2; /* leaves "/" to read */
        } else if (left == 2 && memcmp(in, "/.", 2) == 0) {
            r += 2;
            s[w++] = '/';
        } else if ((left >= 4 && memcmp(in, "/../", 4) == 0) ||
                   (left == 3 && memcmp(in, "/..", 3) == 0)) {
            bool last = left == 3;
            r += 3;
            while (w > 0 && s[w - 1] != '/')
                w--;
            if (w > 0)
                w--; /* drop the last segment and its '/' */
            if (last)
                s[w++] = '/';
        } else if ((left == 1 && in[0] == '.') || (left == 2 && memcmp(in, "..", 2) == 0)) {
            r = n;
        } else {
            /* move the first segment, with its leading '/', to the output */
            size_t k = in[0] == '/' ? 1 : 0;
            while (k < left && in[k] != '/')
                k++;
            memmove(s + w, in, k);
            w += k;
            r += k;
        }
    }
    return w;
}

int url_normalize_path(const char *path, size_t len, struct buf *out)
{
    if (len == 0) {
        buf_append(out, "/", 1);
        return 0;
    }
    buf_reserve(out, len);
    char *o = buf_tail(out);
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c != '%') {
            o[w++] = (char)c;
            continue;
        }
        if (i + 2 >= len || !is_hex((unsigned char)path[i + 1]) ||
            !is_hex((unsigned char)path[i + 2]))
            return -1;
        int hi = hexv((unsigned char)path[i + 1]), lo = hexv((unsigned char)path[i + 2]);
        unsigned char v = (unsigned char)(hi * 16 + lo);
        if (unreserved(v)) {
            o[w++] = (char)v; /* §6.2.2.2: %7E is ~, %41 is A */
        } else {
            static const char hx[] = "0123456789ABCDEF";
            o[w++] = '%';
            o[w++] = hx[v >> 4];
            o[w++] = hx[v & 15];
        }
        i += 2;
    }
    /* dot segments after decoding, so %2E%2E is removed as ".." (§6.2.2.3 order) */
    w = remove_dots(o, w);
    if (w == 0)
        o[w++] = '/';
    buf_commit(out, w);
    return 0;
}

/* remove_dot_segments for url_path_canon: like remove_dots(), and reports a ".." that has no
 * segment left to remove (it would climb above the root). <s> starts with '/'. */
static size_t canon_dots(char *s, size_t n, bool *climbed)
{
    size_t r = 0, w = 0;
    while (r < n) {
        size_t left = n - r;
        const char *in = s + r;
        if ((left >= 3 && memcmp(in, "/./", 3) == 0) || (left == 2 && memcmp(in, "/.", 2) == 0)) {
            r += 2; /* "/." then "/" or the end: the segment vanishes, its '/' stays to read */
            if (left == 2)
                s[w++] = '/';
        } else if ((left >= 4 && memcmp(in, "/../", 4) == 0) ||
                   (left == 3 && memcmp(in, "/..", 3) == 0)) {
            r += 3;
            if (w == 0)
                *climbed = true;
            while (w > 0 && s[w - 1] != '/')
                w--;
            if (w > 0)
                w--; /* drop the last segment and its '/' */
            if (left == 3)
                s[w++] = '/';
        } else {
            size_t k = 1; /* in[0] is '/' */
            while (k < left && in[k] != '/')
                k++;
            memmove(s + w, in, k);
            w += k;
            r += k;
        }
    }
    return w;
}

int url_path_canon(const char *path, size_t len, unsigned flags, char *out, size_t *out_len,
                   const char **why)
{
    static const char hx[] = "0123456789ABCDEF";
    *why = NULL;
    if (len == 0) {
        out[0] = '/';
        *out_len = 1;
        return 0;
    }
    if (path[0] != '/') {
        *why = "path does not start with /";
        return -1;
    }
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c == '%') {
            if (i + 2 >= len || !is_hex((unsigned char)path[i + 1]) ||
                !is_hex((unsigned char)path[i + 2])) {
                *why = "invalid percent-encoding in the path";
                return -1;
            }
            c = (unsigned char)(hexv((unsigned char)path[i + 1]) * 16 +
                                hexv((unsigned char)path[i + 2]));
            i += 2;
            if (c == 0) {
                *why = "encoded NUL (%00) in the path";
                return -1;
            }
            if ((c == '/' || c == '\\') && (flags & URL_CANON_REJECT_ENCODED_SLASH)) {
                *why = c == '/' ? "encoded slash (%2F) in the path"
                                : "encoded backslash (%5C) in the path";
                return -1;
            }
            if (!unreserved(c)) {
                /* kept encoded, upper-cased: %2f and %2F name the same byte */
                out[w++] = '%';
                out[w++] = hx[c >> 4];
                out[w++] = hx[c & 15];
                continue;
            }
            /* unreserved (RFC 3986 §6.2.2.2): %2E is '.', %41 is 'A'; handled as if sent so */
        } else if (c == '\\') {
            /* not a URI character at all; some origins (IIS, Windows file servers) take it for
             * '/', so /api/..\x would leave the route there */
            *why = "backslash in the path";
            return -1;
        }
        if (c == '/' && w > 0 && out[w - 1] == '/' && (flags & URL_CANON_MERGE_SLASHES))
            continue;
        out[w++] = (char)c;
    }
    /* A dot segment with path parameters ("..;x", ".;") is a dot segment to Tomcat and Jetty
     * (/api/..;/internal/x is their /internal/x) and an ordinary segment to RFC 3986: refused. */
    for (size_t i = 0; i < w; i++) {
        if (out[i] != '/')
            continue;
        size_t k = i + 1;
        while (k < w && out[k] == '.')
            k++;
        if ((k == i + 2 || k == i + 3) && k < w && out[k] == ';') {
            *why = "a dot segment with parameters (..;) in the path";
            return -1;
        }
    }
    bool climbed = false;
    w = canon_dots(out, w, &climbed);
    if (climbed) {
        *why = "the path climbs above the root with ..";
        return -1;
    }
    if (w == 0)
        out[w++] = '/';
    *out_len = w;
    return 0;
}

struct qparam {
    const char *p;
    size_t len;      /* whole "name=value" */
    size_t name_len;
    size_t idx;      /* original position, for a stable sort */
};

static int qparam_cmp(const void *a, const void *b)
{
    const struct qparam *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->p, y->p, n);
    if (c)
        return c;
    if (x->name_len != y->name_len)
        return x->name_len < y->name_len ? -1 : 1;
    /* Same name: in the order sent, never by value. An origin reads the first (or the last) of
     * "id=1&id=2"; sorting values would give "id=2&id=1" that response from the cache. */
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static bool ignored(const char *name, size_t len, const char *const *ignore)
{
    if (!ignore)
        return false;
    for (size_t i = 0; ignore[i]; i++) {
        size_t pl = strlen(ignore[i]);
        if (pl && ignore[i][pl - 1] == '*') {
            if (len >= pl - 1 && memcmp(name, ignore[i], pl - 1) == 0)
                return true;
        } else if (pl == len && memcmp(name, ignore[i], len) == 0) {
            return true;
        }
    }
    return false;
}

void url_normalize_query(const char *query, size_t len, const char *const *ignore,
                         struct buf *out)
{
    if (!query || len == 0)
        return;
    if (memchr(query, ';', len) != NULL) {
        /* Origins disagree on ';': some split parameters on it (Rack, older Python), others
         * take it as part of a value. Sorting or dropping parameters split only on '&' would
         * then key "utm_source=x;callback=evil" as the bare path (cloaking), and splitting on
         * ';' too would share "a=1;b=2" with "a=1&b=2". Keyed as sent, it can be neither. */
        buf_append(out, query, len);
        return;
    }
    size_t cap = 1;
    for (size_t i = 0; i < len; i++)
        cap += query[i] == '&';
    struct qparam stack[32];
    struct qparam *ps = cap <= 32 ? stack : xmalloc(cap * sizeof(*ps));
    size_t n = 0;
    for (size_t i = 0; i <= len;) {
        size_t s = i;
        while (i < len && query[i] != '&')
            i++;
        size_t plen = i - s;
        if (plen) {
            const char *eq = memchr(query + s, '=', plen);
            size_t nl = eq ? (size_t)(eq - (query + s)) : plen;
            if (!ignored(query + s, nl, ignore)) {
                ps[n] = (struct qparam){query + s, plen, nl, n};
                n++;
            }
        }
        i++;
    }
    if (n > 1)
        qsort(ps, n, sizeof(*ps), qparam_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_append(out, "&", 1);
        buf_append(out, ps[i].p, ps[i].len);
    }
    if (ps != stack)
        free(ps);
}
